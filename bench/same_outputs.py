"""Run facepipe on every shared clip at several frame steps, or compare two such sets of runs.

A refactor must not change what a run produces. This tool makes that checkable:

    python bench/same_outputs.py run /tmp/before          # every clip at steps 3 and 15
    ... change the code ...
    python bench/same_outputs.py run /tmp/after
    python bench/same_outputs.py compare /tmp/before /tmp/after

``compare`` holds, for each run folder present in both:

* ``faces.jsonl``: byte for byte;
* ``summary.json``: byte for byte once the fields that measure time or name the run are
  blanked (``elapsed_s``, ``stage_seconds``, ``run_id``); everything else, key order and
  indentation included, must be equal;
* ``bank.npz``: every array equal in name, dtype, shape and value (``np.array_equal``), and
  ``run_id`` ignored. The file itself is a zip whose members carry their write time, so its
  bytes differ between any two runs.

``--code DIR`` runs another checkout's code (its ``facepipe/`` and ``tasks/`` come first on
``PYTHONPATH``, and it is the working folder, for the CLI and the workers it starts), so the
"before" can be a frozen ``git worktree`` while the working tree changes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
#: summary.json fields that measure time or name the run: they differ between any two runs
VOLATILE = ("elapsed_s", "stage_seconds", "run_id")


def _cli_module(code: Path) -> str:
    """``facepipe`` where the checkout has ``facepipe/__main__.py``; older ones: ``facepipe.app.cli``."""
    return "facepipe" if (code / "facepipe" / "__main__.py").is_file() else "facepipe.app.cli"


def run_all(dest: Path, steps: list[int], code: Path | None, clips: list[str] | None) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code.resolve())
    videos = sorted(VIDEOS.glob("*.mp4"))
    if clips:
        videos = [v for v in videos if v.stem in clips]
    failures = 0
    for video in videos:
        for step in steps:
            out = dest / f"{video.stem}@{step}"
            t0 = time.monotonic()
            cmd = [sys.executable, "-m", _cli_module(code or ROOT), "run", str(video),
                   "--frame-step", str(step), "--out", str(out), "--no-progress"]  # fmt: skip
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=code or ROOT)
            print(f"{out.name}: exit {done.returncode} in {time.monotonic() - t0:.1f} s", flush=True)
            if done.returncode not in (0, 3):
                failures += 1
                print(done.stderr[-2000:], file=sys.stderr)
    return 1 if failures else 0


def _summary_bytes(path: Path) -> bytes:
    data = orjson.loads(path.read_bytes())
    for key in VOLATILE:
        if key in data:
            data[key] = None
    return orjson.dumps(data, option=orjson.OPT_INDENT_2)


def _bank_differences(a: Path, b: Path) -> list[str]:
    with np.load(a, allow_pickle=False) as x, np.load(b, allow_pickle=False) as y:
        problems = []
        if sorted(x.files) != sorted(y.files):
            problems.append(f"arrays {sorted(set(x.files) ^ set(y.files))} in one bank only")
        for key in sorted(set(x.files) & set(y.files)):
            if key == "run_id":
                continue
            u, v = x[key], y[key]
            if u.dtype != v.dtype or u.shape != v.shape or not np.array_equal(u, v):
                problems.append(f"{key} differs ({u.dtype}{u.shape} vs {v.dtype}{v.shape})")
        return problems


def compare(before: Path, after: Path) -> int:
    runs = sorted(p.name for p in before.iterdir() if (p / "faces.jsonl").is_file())
    bad = 0
    for name in runs:
        a, b = before / name, after / name
        if not (b / "faces.jsonl").is_file():
            print(f"{name}: missing in {after}")
            bad += 1
            continue
        problems = []
        if (a / "faces.jsonl").read_bytes() != (b / "faces.jsonl").read_bytes():
            problems.append("faces.jsonl differs")
        if _summary_bytes(a / "summary.json") != _summary_bytes(b / "summary.json"):
            problems.append("summary.json differs (beyond elapsed_s, stage_seconds, run_id)")
        problems += _bank_differences(a / "bank.npz", b / "bank.npz")
        lines = (a / "faces.jsonl").read_bytes().count(b"\n")
        print(f"{name}: {'IDENTICAL' if not problems else '; '.join(problems)} ({lines} faces)")
        bad += bool(problems)
    print(f"{len(runs) - bad} of {len(runs)} runs identical")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every shared clip at each step into DEST/<clip>@<step>")
    run.add_argument("dest", type=Path)
    run.add_argument("--steps", default="3,15", help="frame steps, comma-separated (default 3,15)")
    run.add_argument("--code", type=Path, help="another checkout whose code to run")
    run.add_argument("--clips", help="only these clip stems, comma-separated")
    cmp = sub.add_parser("compare", help="compare two folders of runs")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        steps = [int(s) for s in args.steps.split(",")]
        clips = args.clips.split(",") if args.clips else None
        return run_all(args.dest, steps, args.code, clips)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
