"""The run's final identities: the writer's online identities after the merge pass.

The online writer keeps look-alikes apart with a strict threshold (``--sim-thresh``,
default 0.40); this pass then re-joins one person's fragments (profile views, blur,
lighting) by average linkage over their faces (``--merge-thresh``, default 0.25), never
joining two identities that appear together in one frame. ``bench/accuracy.py`` measured
this against the seed's single pass at 0.27 on every label set: never worse, better on
the photo sets. ``--merge-thresh 0`` turns the pass off (then, with ``--sim-thresh 0.27``,
results are exactly the seed's).

It reads only what the writer persisted (faces, their embeddings and the identity
table), is deterministic, and changes nothing in Redis, so it can run again at any time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facepipe.contracts import FaceLine
from facepipe.identity import DIM, normalise
from facepipe.merge import merge_run
from facepipe.store import RunStore


@dataclass
class FinalIdentities:
    """Identities ``0..K-1`` after merging, and every face relabelled to them."""

    mapping: np.ndarray  # online identity -> final identity
    embeddings: np.ndarray  # (K, DIM) the founding face of each final identity
    centroids: np.ndarray  # (K, DIM) unit rows
    refine_counts: np.ndarray  # (K,)
    counts: np.ndarray  # (K,)
    faces: list[FaceLine]  # identity (final) and online_identity set
    face_embeddings: np.ndarray  # (F, DIM)

    def __len__(self) -> int:
        return len(self.counts)


def finalise(store: RunStore, merge_thresh: float) -> FinalIdentities:
    bank = store.load_bank()
    faces = store.faces()
    face_embeddings = store.face_embeddings()
    online = np.array([f.identity for f in faces], dtype=np.int64)
    n = len(bank)
    if merge_thresh > 0 and n > 1:
        frames = [f.frame for f in faces]
        mapping = merge_run(frames, online, face_embeddings, merge_thresh, n_identities=n)
    else:
        mapping = np.arange(n, dtype=np.int64)
    k = int(mapping.max()) + 1 if n else 0
    counts = np.zeros(k, dtype=np.int64)
    refine_counts = np.zeros(k, dtype=np.int64)
    centroids = np.zeros((k, DIM), dtype=np.float32)
    embeddings = np.zeros((k, DIM), dtype=np.float32)
    for final in range(k):
        members = np.flatnonzero(mapping == final)
        weights = np.array([bank.counts[m] for m in members], dtype=np.float64)
        counts[final] = int(weights.sum())
        refine_counts[final] = sum(bank.refine_counts[m] for m in members)
        if len(members) == 1:
            centroids[final] = bank.centroids[members[0]]
        else:  # count-weighted mean of the members' centroids
            centroids[final] = normalise((bank.centroids[members] * weights[:, None]).sum(axis=0))
        embeddings[final] = bank.embeddings[members[0]]
    lines = [
        face.model_copy(update={"identity": int(mapping[face.identity]), "online_identity": face.identity})
        for face in faces
    ]
    return FinalIdentities(mapping, embeddings, centroids, refine_counts, counts, lines, face_embeddings)
