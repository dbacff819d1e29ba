"""Baseline (A) against ``facepipe run`` configurations, alternated A B1 B2 ... per round.

    python bench/run.py [--pairs 3] [--video PATH] [--frame-step 15]
                        [--contender [NAME[@REV]=]FLAGS ...] [--reference NAME=FLAGS ...]
                        [--contender-env K=V] [--baseline-args "--threads 1"]
                        [--sim-thresh 0.27] [--refine-limit 30] [--no-snapshot]
                        [--no-stage-run] [--no-sizes] [--results FILE]
    python bench/run.py --episode --video LONG.mp4 --contender NAME=FLAGS ... [--episode-baseline]

Both sides get the seed's clustering (``--sim-thresh``/``--refine-limit`` passed explicitly;
facepipe also ``--clustering seed`` where it has it, else ``--merge-thresh 0`` where it has that),
and run from a copy of ``facepipe/``,
``tasks/`` and ``celeryconfig.py`` taken at start (or a git revision's, ``NAME@REV=``), so
edits made meanwhile do not mix in.

Each run is a fresh subprocess timed from launch to exit (imports, model loads, worker
start and stop included). While it runs, a sampler thread reads /proc every 0.1 s for
the whole process tree (peak RSS per process and role, CPU seconds per role, and every
second RSS and CPU per role for the memory-over-time view) and, for facepipe, polls the
run's embedded server for milestones (first chunk embedded, first face applied, last chunk
applied). After the rounds:

* the ``--reference`` runs (untimed), which every contender's faces are compared with;
* one extra, untimed run of the first contender with Redis ``MONITOR`` attached recovers
  the bytes of every task message and the writer's time per chunk;
* ``facepipe.inference.chunk.detect_chunk`` / ``embed_record`` run in this process on a sample
  of chunks to size a chunk record before and after embedding.

Prints markdown tables and writes bench/results/results.json. See bench/README.md. This file only
parses the command line; the harness is ``bench/harness/`` (its ``__init__`` maps it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import make_video  # noqa: E402  (bench/ sibling)
from harness.bench import run  # noqa: E402
from harness.contenders import DEFAULT_CONTENDER  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="rounds of A and every contender (default 3)")
    parser.add_argument("--video", type=Path, default=make_video.DEFAULT_PATH, help="built if missing")
    parser.add_argument("--frame-step", type=int, default=15)
    parser.add_argument(
        "--contender",
        action="append",
        default=None,
        metavar="[NAME[@REV]=]FLAGS",
        help=f"a facepipe run configuration (repeatable; default {DEFAULT_CONTENDER!r}); NAME@REV runs "
        "the code of git revision REV",
    )
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME[@REV]=FLAGS",
        help="an untimed facepipe run every contender's faces are also compared with (repeatable)",
    )
    parser.add_argument(
        "--contender-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the facepipe runs (repeatable)",
    )
    parser.add_argument("--baseline-args", default="", help="extra flags for baseline.py, e.g. '--threads 2'")
    parser.add_argument(
        "--sim-thresh", type=float, default=0.27, help="given to A and B (default: the seed's 0.27)"
    )
    parser.add_argument("--refine-limit", type=int, default=30, help="given to A and B (default 30)")
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run the working tree as is (default: a copy made at start)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facepipe-bench/runs"))
    parser.add_argument("--results", type=Path, default=BENCH / "results" / "results.json")
    parser.add_argument("--no-stage-run", action="store_true", help="skip the extra instrumented B run")
    parser.add_argument("--no-sizes", action="store_true", help="skip the in-process chunk record sizing")
    parser.add_argument(
        "--episode",
        action="store_true",
        help="one run per contender on a long video: wall time, stage times, memory over time",
    )
    parser.add_argument("--episode-baseline", action="store_true", help="with --episode, also run A once")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
