"""The merge pass: join identities whose faces are close and never share a frame.

Runs after the online writer (see :mod:`facepipe.final`). Average linkage over faces
(UPGMA, constrained to the online partition), merging the most similar pair while its
linkage is ``>= thresh`` and never joining two identities that appeared together in one
frame. Chosen by ``bench/accuracy.py`` over the other candidates measured there
(``bench/clustering_options.py``: co-occurrence constraint, box-overlap tracks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from facepipe.linkage import average_linkage, group_sums


def compact(representatives: np.ndarray) -> np.ndarray:
    """Renumber ``old -> representative`` as ``old -> 0..K-1``, in order of first representative."""
    _, new = np.unique(np.asarray(representatives), return_inverse=True)
    return new.astype(np.int64)


def cooccurring_pairs(face_frames: Sequence[int], face_identities: Sequence[int]) -> set[tuple[int, int]]:
    """Every pair of distinct identities (low, high) that share a frame."""
    by_frame: dict[int, set[int]] = {}
    for frame, identity in zip(face_frames, face_identities, strict=True):
        by_frame.setdefault(int(frame), set()).add(int(identity))
    pairs: set[tuple[int, int]] = set()
    for ids in by_frame.values():
        ordered = sorted(ids)
        pairs.update((a, b) for k, a in enumerate(ordered) for b in ordered[k + 1 :])
    return pairs


def merge_run(
    face_frames: Sequence[int],
    face_identities: Sequence[int],
    face_embeddings: np.ndarray,
    thresh: float,
    n_identities: int | None = None,
) -> np.ndarray:
    """The offline merge pass over a finished run, from what every run already persists.

    Takes the run's faces (``bank.npz``'s ``face_frames``, ``face_identities``,
    ``face_embeddings``, or the store's faces list and embeddings) and returns ``old identity
    -> final identity`` (compact ``0..K-1``, numbered in founding order of each group's first
    identity). Mean face-to-face cosine linkage, never joining identities that share a frame;
    identical to the ``merge`` step of :func:`cluster` with ``merge_linkage='faces'``.
    Deterministic and idempotent on the same input, so it can run (again) at finalisation.
    """
    identities = np.asarray(face_identities, dtype=np.int64)
    embeddings = np.asarray(face_embeddings).reshape(len(identities), -1)
    n = int(n_identities if n_identities is not None else (identities.max() + 1 if len(identities) else 0))
    if n < 2:
        return np.arange(n)
    sums = group_sums(identities, embeddings, n)
    counts = np.bincount(identities, minlength=n).astype(np.float64)
    counts[counts == 0] = 1.0  # an identity with no face keeps a zero sum and never merges
    pairs = cooccurring_pairs(face_frames, identities)
    return compact(merge_identities(sums, counts, pairs, thresh))


def merge_identities(
    vectors: np.ndarray, weights: np.ndarray, cooccur: Iterable[tuple[int, int]], thresh: float
) -> np.ndarray:
    """Average-linkage agglomeration of identities; returns old id -> representative (lowest) id.

    Identity ``i`` is ``weights[i]`` points whose *sum* is ``vectors[i]``, so the linkage of
    groups ``G`` and ``H``, the mean similarity over all their cross pairs of points, is
    ``(sum_G vectors) . (sum_H vectors) / (W_G * W_H)``. With ``vectors`` the sums of the
    unit face embeddings this is exactly the mean face-to-face cosine (UPGMA over faces,
    constrained to the online partition). The best pair is merged while its linkage is
    ``>= thresh``, skipping pairs where any member of one co-occurred with any of the other.
    Deterministic: ties go to the lowest ``(i, j)``. Sparse and exact
    (:func:`facepipe.linkage.average_linkage`): 20,000 identities take seconds.
    """
    return average_linkage(vectors, weights, cooccur, thresh)
