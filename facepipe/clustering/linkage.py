"""Average linkage with cannot-link constraints, on a sparse candidate graph: exact and scalable.

The merge pass joins groups of faces (online identities, face tracks, episodes' identities)
whose **average linkage**, the mean cosine over every pair of their faces, is at least a
threshold, most similar pair first, never joining two groups that a constraint keeps apart
(they appear in one frame). A dense implementation holds an ``n x n`` matrix and rescans it
after every merge: O(n³) time and n² memory, 171 s at 3,000 groups and hours at 20,000.

Here the same result comes from a sparse graph:

* Group ``i`` is ``weights[i]`` unit vectors whose *sum* is ``vectors[i]``; the linkage of
  groups ``G`` and ``H`` is ``(sum_G . sum_H) / (W_G * W_H)``, a weighted mean of the
  linkages of their members' pairs. A mean is never above its largest term, so two groups
  can only reach the threshold if some pair of their original members does.
* So the only candidate pairs are the original pairs at or above the threshold
  (:func:`candidate_pairs`: a blocked matrix product, float32 with a safety margin, then
  exact float64 dot products), and two groups are neighbours when any of their members
  are. Every pair the dense pass could merge is a neighbour pair.
* A heap holds each neighbour pair's current linkage (stale entries are skipped by a
  version stamp); a merge combines the two groups' neighbour lists and recomputes only
  the merged group's linkages.

Ties go to the lowest ``(i, j)`` and the merged group keeps the lower id, exactly as the
dense pass (``tests/reference.py``) does; a property test holds the two to each other.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import numpy as np

#: rows of the candidate search per matrix product (bounds its memory to block x n floats)
BLOCK = 1024
#: float32 products may be this far below the float64 value; candidates are then re-checked
MARGIN = 1e-4


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


def group_sums(groups: np.ndarray, vectors: np.ndarray, n_groups: int, block: int = 8192) -> np.ndarray:
    """Float64 sum of the vectors of each group (in row order), without a float64 copy of them all."""
    groups = np.asarray(groups, dtype=np.int64)
    sums = np.zeros((n_groups, vectors.shape[1] if vectors.ndim == 2 else 0), dtype=np.float64)
    for start in range(0, len(groups), block):
        np.add.at(sums, groups[start : start + block], np.asarray(vectors[start : start + block], np.float64))
    return sums


def candidate_pairs(vectors: np.ndarray, weights: np.ndarray, thresh: float) -> dict[tuple[int, int], float]:
    """Every pair ``i < j`` whose linkage ``v_i . v_j / (w_i w_j)`` is at least ``thresh``,
    mapped to its exact float64 dot product ``v_i . v_j``."""
    vectors = np.asarray(vectors, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    n = len(vectors)
    if n < 2:
        return {}
    means = (vectors / weights[:, None]).astype(np.float32)  # linkage = means_i . means_j
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        block = means[start:stop] @ means[start:].T  # only columns j >= start
        rows, cols = np.nonzero(block >= thresh - MARGIN)
        keep = cols > rows  # j > i (column c is j = start + c, row r is i = start + r)
        ii, jj = rows[keep] + start, cols[keep] + start
        dots = np.einsum("ij,ij->i", vectors[ii], vectors[jj])  # exact, float64
        exact = dots / (weights[ii] * weights[jj]) >= thresh
        keys = zip(ii[exact].tolist(), jj[exact].tolist(), strict=True)
        pairs.update(zip(keys, dots[exact].tolist(), strict=True))
    return pairs


def average_linkage(
    vectors: np.ndarray,
    weights: np.ndarray,
    cannot_link: Iterable[tuple[int, int]],
    thresh: float,
    anchored: np.ndarray | None = None,
) -> np.ndarray:
    """Agglomerate groups by average linkage while it is ``>= thresh``; returns, for each
    group, the lowest id of the group it ends in.

    ``vectors[i]`` is the sum of group ``i``'s unit vectors and ``weights[i]`` their number;
    ``cannot_link`` pairs (and any groups containing them) are never joined. ``anchored``
    groups (a series bank's known people) never join each other, so no two of them are ever
    renumbered into one; when two groups holding anchors ``a`` and ``b`` would have joined
    and at least one of them has gathered other groups (new evidence, not the anchors
    alone), ``(a, b, linkage)`` is appended to ``conflicts``.
    """
    sums = np.array(vectors, dtype=np.float64)
    weight = np.array(weights, dtype=np.float64)
    n = len(sums)
    parent = np.arange(n)
    if n < 2:
        return parent
    neighbours: list[dict[int, float]] = [{} for _ in range(n)]  # k -> sums[i] . sums[k]
    for (i, j), dot in candidate_pairs(sums, weight, thresh).items():
        neighbours[i][j] = neighbours[j][i] = dot
    forbidden: list[set[int]] = [set() for _ in range(n)]
    for a, b in cannot_link:
        if a != b:
            forbidden[a].add(b)
            forbidden[b].add(a)
    anchor = (
        [-1] * n if anchored is None else [i if a else -1 for i, a in enumerate(np.asarray(anchored, bool))]
    )
    stamp = [0] * n
    active = [True] * n
    heap: list[tuple[float, int, int, int, int]] = []

    def push(i: int, k: int) -> None:
        a, b = (i, k) if i < k else (k, i)
        linkage = neighbours[a][b] / (weight[a] * weight[b])
        if linkage >= thresh and b not in forbidden[a]:
            heapq.heappush(heap, (-linkage, a, b, stamp[a], stamp[b]))

    for i in range(n):
        for k in neighbours[i]:
            if k > i:
                push(i, k)
    while heap:
        _, i, j, stamp_i, stamp_j = heapq.heappop(heap)
        if not (active[i] and active[j]) or stamp[i] != stamp_i or stamp[j] != stamp_j:
            continue  # one of the two has merged since this entry was pushed
        if j in forbidden[i]:
            continue
        if anchor[i] >= 0 and anchor[j] >= 0:
            forbidden[i].add(j)
            forbidden[j].add(i)
            continue
        anchor[i] = max(anchor[i], anchor[j])
        _merge(i, j, sums, weight, neighbours, forbidden)
        active[j] = False
        parent[parent == j] = i
        stamp[i] += 1
        for k in neighbours[i]:
            push(i, k)
    return parent


def _merge(
    i: int,
    j: int,
    sums: np.ndarray,
    weight: np.ndarray,
    neighbours: list[dict[int, float]],
    forbidden: list[set[int]],
) -> None:
    """Group ``j`` joins group ``i``: sums, weights, neighbour dot products, constraints."""
    merged: dict[int, float] = {}
    for k in (neighbours[i].keys() | neighbours[j].keys()) - {i, j}:
        dot_i = neighbours[i].get(k)
        dot_j = neighbours[j].get(k)
        if dot_i is None:
            dot_i = float(sums[i] @ sums[k])
        if dot_j is None:
            dot_j = float(sums[j] @ sums[k])
        merged[k] = dot_i + dot_j
    for k in neighbours[j]:
        neighbours[k].pop(j, None)
    for k, dot in merged.items():
        neighbours[k][i] = dot
    neighbours[i] = merged
    neighbours[j] = {}
    sums[i] += sums[j]
    weight[i] += weight[j]
    for k in forbidden[j]:
        forbidden[k].discard(j)
        if k != i:
            forbidden[k].add(i)
            forbidden[i].add(k)
    forbidden[j] = set()
