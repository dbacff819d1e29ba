"""The run's final identities: what the final pass makes of the writer's faces.

* ``--clustering tracks`` (the default): the writer has put every face on a track within a
  shot; :func:`facepipe.clustering.people.cluster_tracks` groups the tracks into people at
  ``--merge-thresh`` and rejects tracks of false faces.
* ``--clustering online``: the writer's online identities (``--sim-thresh``, default 0.40)
  joined by :func:`facepipe.clustering.people.merge_run` at ``--merge-thresh`` (the previous
  default).
* ``--clustering seed``: the writer's online identities as they are (the seed's algorithm).

``bench/accuracy.py`` measured all three on every label set (README, "Accuracy"). The
final identities are numbered ``0..K-1`` in order of their first face; each one's centroid is
its faces' normalised mean (with tracks or merged identities) or the writer's centroid (one
online identity kept as it is). Identities with fewer than ``--min-faces`` faces are marked
as extras. The pass reads only what the writer persisted, is deterministic and changes
nothing in Redis, so it can run again at any time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facepipe.clustering.identity import IdentityTable
from facepipe.clustering.linkage import group_sums
from facepipe.clustering.people import cluster_tracks, merge_run
from facepipe.records import DIM, FaceLine, RunParams
from facepipe.settings import Clustering


@dataclass
class FinalIdentities:
    """Identities ``0..K-1`` and every kept face relabelled to them."""

    embeddings: np.ndarray  # (K, DIM) the first face of each identity
    centroids: np.ndarray  # (K, DIM) unit rows
    refine_counts: np.ndarray  # (K,) faces that shaped each centroid
    counts: np.ndarray  # (K,)
    extras: np.ndarray  # (K,) bool: fewer than --min-faces faces
    faces: list[FaceLine]  # kept faces: identity (final) and online_identity set
    face_embeddings: np.ndarray  # (F, DIM), one per kept face
    #: faces rejected as no face (tracks of suspect faces that joined nobody)
    rejected: list[FaceLine] = field(default_factory=list)
    #: the final identity of each of the writer's faces, in its order (-1: rejected)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.counts)


def final_identities(
    faces: list[FaceLine], embeddings: np.ndarray, table: IdentityTable, params: RunParams
) -> FinalIdentities:
    """The final pass over a run's faces (in applied order) and the writer's identity table."""
    online = np.array([face.identity for face in faces], dtype=np.int64)
    if params.clustering == Clustering.tracks:
        labels = cluster_tracks(
            [face.track for face in faces],
            [face.frame for face in faces],
            embeddings,
            [bool(face.suspect) for face in faces],
            params.merge_thresh,
            norms=[face.emb_norm for face in faces],
        )
    elif params.clustering == Clustering.online and params.merge_thresh > 0 and len(table) > 1:
        mapping = merge_run([f.frame for f in faces], online, embeddings, params.merge_thresh, len(table))
        labels = mapping[online] if len(online) else online
    else:  # the seed, or nothing to merge: the online identities themselves
        labels = online
    return _assemble(faces, embeddings, labels, table, params)


def _assemble(
    faces: list[FaceLine], embeddings: np.ndarray, labels: np.ndarray, table: IdentityTable, params: RunParams
) -> FinalIdentities:
    kept = np.flatnonzero(labels >= 0)
    k = int(labels.max()) + 1 if len(kept) else 0
    counts = np.bincount(labels[kept], minlength=k).astype(np.int64)
    first = np.full(k, -1, dtype=np.int64)
    for i in kept[::-1]:  # the first face of each identity
        first[labels[i]] = i
    sums = group_sums(labels[kept], embeddings[kept], k)
    centroids = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    refine_counts = counts.copy()
    if params.clustering != Clustering.tracks:
        # an identity that is one online identity keeps the writer's centroid and refine count
        online = np.array([faces[i].identity for i in kept], dtype=np.int64)
        members = [set() for _ in range(k)]
        for label, identity in zip(labels[kept].tolist(), online.tolist(), strict=True):
            members[label].add(identity)
        for label, ids in enumerate(members):
            if len(ids) == 1:
                (identity,) = ids
                centroids[label] = table.centroids[identity]
                refine_counts[label] = table.refine_counts[identity]
    extras = counts < params.min_faces
    lines = [
        faces[i].model_copy(
            update={
                "identity": int(labels[i]),
                "online_identity": faces[i].identity,
                "extra": bool(extras[labels[i]]) if params.min_faces > 1 else None,
            }
        )
        for i in kept
    ]
    rejected = [faces[i] for i in np.flatnonzero(labels < 0)]
    return FinalIdentities(
        embeddings=(embeddings[first] if k else np.zeros((0, DIM))).astype(np.float32),
        centroids=centroids.reshape(k, DIM),
        refine_counts=refine_counts,
        counts=counts,
        extras=extras,
        faces=lines,
        face_embeddings=np.asarray(embeddings)[kept].astype(np.float32).reshape(len(kept), DIM),
        rejected=rejected,
        labels=labels,
    )
