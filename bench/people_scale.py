"""How the final pass scales: a synthetic season of N face tracks through
:func:`facepipe.clustering.people.cluster_tracks`, the default (with the faces' norms: average
linkage, then the neighbourhood step) and the previous default (``norms=None``: average linkage
only).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/people_scale.py --tracks 20000 [--poor 1.0]

People are random unit vectors in 512-d; each track is ``--faces-per-track`` faces of one person
on consecutive sampled frames (step 15) somewhere in a long programme (so some tracks share frames
and may not join). A share ``--poor`` of the tracks (default a quarter) is poorly seen: raw norms
10-18 and twice the noise (a face's cosine to its person about 0.45 instead of 0.64); the rest
have norms 20-26. Every person has about five tracks (``--poor 1.0``: every track poorly seen, the
worst case for the neighbourhood step). Prints one JSON line per pass with the time of the pass
alone and the process's peak resident memory (so with ``--pass both`` the second line's peak
includes the first pass's; ``--pass default`` / ``--pass previous`` time one each); ``--json``
also writes them. Run it with one BLAS thread to measure one core; ``cpu_seconds`` (process time)
is the figure to read on a shared machine, ``seconds`` the wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from facepipe.clustering.people import cluster_tracks  # noqa: E402
from facepipe.records import DIM  # noqa: E402


def synthetic_season(n_tracks: int, per_track: int, seed: int, poor_share: float = 0.25):
    rng = np.random.default_rng(seed)
    n_people = max(1, n_tracks // 5)
    centres = rng.standard_normal((n_people, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owner = rng.integers(0, n_people, size=n_tracks)
    poor = rng.random(n_tracks) < poor_share
    tracks = np.repeat(np.arange(n_tracks), per_track)
    noise = np.where(poor, 2.0, 1.2)[tracks].astype(np.float32)[:, None] / np.sqrt(DIM)
    faces = rng.standard_normal((len(tracks), DIM), dtype=np.float32) * noise + centres[owner[tracks]]
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    starts = rng.integers(0, n_tracks * 20, size=n_tracks) * 15
    frames = starts[tracks] + np.tile(np.arange(per_track) * 15, n_tracks)
    norms = np.where(poor[tracks], rng.uniform(10, 18, len(tracks)), rng.uniform(20, 26, len(tracks)))
    order = np.lexsort((tracks, frames))  # the writer's order: by frame
    return tracks[order], frames[order], faces[order], norms[order], owner, n_people


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=20000)
    parser.add_argument("--faces-per-track", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poor", type=float, default=0.25, help="share of poorly seen tracks")
    parser.add_argument(
        "--pass",
        dest="which",
        choices=("both", "default", "previous"),
        default="both",
        help="which pass to time (one per process gives each its own peak memory)",
    )
    parser.add_argument("--json", type=Path, help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    tracks, frames, faces, norms, _, n_people = synthetic_season(
        args.tracks, args.faces_per_track, args.seed, args.poor
    )
    suspect = np.zeros(len(tracks), dtype=bool)
    passes = {}
    if args.which in ("both", "default"):
        passes["default"] = lambda: cluster_tracks(tracks, frames, faces, suspect, 0.25, norms)
    if args.which in ("both", "previous"):
        passes["previous default"] = lambda: cluster_tracks(tracks, frames, faces, suspect, 0.25)
    for name, run in passes.items():
        started, cpu = time.perf_counter(), time.process_time()
        labels = run()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        line = json.dumps(
            {
                "pass": name,
                "tracks": args.tracks,
                "faces": len(tracks),
                "poor_share": args.poor,
                "people": n_people,
                "identities": int(labels.max()) + 1,
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
        print(line, flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
