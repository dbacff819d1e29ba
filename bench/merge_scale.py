"""How the merge pass scales: a synthetic identity table of N online identities through ``merge_run``.

    python bench/merge_scale.py --identities 20000 [--faces-per-identity 5] [--seed 0]

People are random unit vectors in 512-d; each online identity is a fragment of one person:
``--faces-per-identity`` faces, each ``normalise(person + noise)`` with the noise scaled so a
face's cosine to its person is about 0.64 and two faces of one person meet at about 0.4
(ArcFace's range on TV), spread over random frames of a long programme (so some fragments
share a frame and may not merge). Every person is split into about four fragments. Prints
one JSON line: ``{"identities", "faces", "people", "final", "seconds", "peak_mb"}``, where
``seconds`` times :func:`facepipe.clustering.people.merge_run` alone and ``peak_mb`` is the process's
peak resident memory (everything: Python, NumPy, the inputs and the pass).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from facepipe.clustering.people import merge_run
from facepipe.records import DIM


def synthetic_table(
    identities: int, per_identity: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    people = max(1, identities // 4)
    centres = rng.normal(size=(people, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owner = rng.integers(0, people, size=identities)
    face_identity = np.repeat(np.arange(identities), per_identity)
    faces = rng.standard_normal(size=(len(face_identity), DIM), dtype=np.float32)
    faces *= 1.2 / np.sqrt(DIM)
    faces += centres[owner[face_identity]]
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    frames = rng.integers(0, identities * 20, size=len(face_identity))  # a long programme
    return frames, face_identity, faces, people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--faces-per-identity", type=int, default=5)
    parser.add_argument("--thresh", type=float, default=0.25, help="merge threshold (the default pass's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frames, identities, faces, people = synthetic_table(args.identities, args.faces_per_identity, args.seed)
    started = time.perf_counter()
    mapping = merge_run(frames, identities, faces, args.thresh, n_identities=args.identities)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "identities": args.identities,
                "faces": int(len(faces)),
                "people": people,
                "final": int(mapping.max()) + 1,
                "seconds": round(seconds, 2),
                "peak_mb": round(peak_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
