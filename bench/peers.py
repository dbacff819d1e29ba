"""The peers ``bench/accuracy.py`` and ``bench/people_bench.py`` score beside the product: how
other face-grouping systems cluster.

Offline clusterings of all of a run's faces at once, ported from the issue #10 research
(``/work/research/clustering/clusterers.py``):

* :func:`dbscan`: Immich's DBSCAN on cosine distance (0.5, at least 3 faces);
* :func:`connected_components`: components of the graph of pairs at cosine >= 0.4;
* :func:`average_linkage_faces`: plain average linkage (UPGMA), cut at cosine distance 0.8;
* :func:`chinese_whispers`: dlib's Chinese whispers on edges at cosine >= 0.4;
* :func:`single_linkage_cannot_link`: single linkage down to cosine 0.4, never joining two
  groups that have faces in one frame;
* :func:`finch`: FINCH's first-neighbour partitions (Sarfraz et al., CVPR 2019), parameter-free
  (issue 18's first-neighbour peer).

They see embeddings (and, for cannot-link, the faces' frames) only: no tracks, no gate. Each
takes the faces of a run in writer order (frame, then detector index) and returns a label per
face, numbered 0..K-1 by first appearance. Deterministic.

The product's own modes (``--clustering seed|online|tracks``) are not here: ``accuracy.py``
runs them through :func:`facepipe.clustering.run.cluster_records`. The earlier online research
candidates that used to live beside these peers in ``bench/clustering_options.py`` (the seed's
match-or-add with co-occurrence, box-overlap links and an offline merge: the study behind
``--clustering online``) are retired; git history keeps them.
"""

from __future__ import annotations

import numpy as np


def first_order(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..K-1 in order of first appearance."""
    labels = np.asarray(labels)
    if not len(labels):
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)].astype(np.int64)


def dbscan(embeddings: np.ndarray, eps: float = 0.5, min_samples: int = 3) -> np.ndarray:
    """DBSCAN on cosine distance, as Immich groups faces (distance 0.5, at least 3 faces). A point
    counts itself; border points join the first core cluster that reaches them (index order);
    noise points are singletons (each its own identity)."""
    e = np.asarray(embeddings, dtype=np.float32)
    n = len(e)
    if n == 0:
        return np.zeros(0, np.int64)
    near = (1.0 - e @ e.T) <= eps + 1e-6
    core = near.sum(1) >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    c = 0
    for i in range(n):
        if not core[i] or labels[i] >= 0:
            continue
        stack = [i]
        labels[i] = c
        while stack:
            p = stack.pop()
            for q in np.flatnonzero(near[p]):
                if labels[q] < 0:
                    labels[q] = c
                    if core[q]:
                        stack.append(q)
        c += 1
    for i in np.flatnonzero(labels < 0):
        labels[i] = c
        c += 1
    return first_order(labels)


def connected_components(embeddings: np.ndarray, sim_min: float = 0.4) -> np.ndarray:
    """Components of the graph with an edge where cosine >= ``sim_min`` (DBSCAN with min 1 point,
    = single linkage without constraints)."""
    return dbscan(embeddings, 1.0 - sim_min, 1)


def average_linkage_faces(embeddings: np.ndarray, distance: float = 0.8) -> np.ndarray:
    """Plain average linkage (UPGMA) over faces, cut at cosine distance ``distance`` (0.8 = mean
    cosine >= 0.2), no constraints. SciPy's (installed with insightface); the research checked it
    equals its own dense agglomeration."""
    from scipy.cluster.hierarchy import fcluster, linkage

    e = np.asarray(embeddings, dtype=np.float64)
    if len(e) < 2:
        return np.zeros(len(e), dtype=np.int64)
    return first_order(
        fcluster(linkage(e, method="average", metric="cosine"), t=distance, criterion="distance")
    )


def chinese_whispers(
    embeddings: np.ndarray, sim_min: float = 0.4, iterations: int = 100, seed: int = 0
) -> np.ndarray:
    """dlib's Chinese whispers on unweighted edges at cosine >= ``sim_min`` (a seeded shuffle of the
    faces per round, at most ``iterations`` rounds, stops when nothing changes)."""
    e = np.asarray(embeddings, dtype=np.float32)
    n = len(e)
    adj = (e @ e.T) >= sim_min
    np.fill_diagonal(adj, False)
    neighbours = [np.flatnonzero(adj[i]) for i in range(n)]
    labels = np.arange(n)
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = False
        for i in rng.permutation(n):
            if not len(neighbours[i]):
                continue
            best = int(np.argmax(np.bincount(labels[neighbours[i]])))
            if best != labels[i]:
                labels[i] = best
                changed = True
        if not changed:
            break
    return first_order(labels)


def single_linkage_cannot_link(
    frames: np.ndarray, embeddings: np.ndarray, sim_min: float = 0.4
) -> np.ndarray:
    """Single linkage over faces down to cosine ``sim_min``, never joining two groups that have faces
    in one frame. Kruskal's order (pairs by cosine, highest first; a pair whose groups share a frame
    is skipped for good, as a shared frame never goes away), which makes the same merges as the
    research's dense agglomeration (best allowed pair first) up to ties."""
    e = np.asarray(embeddings, dtype=np.float32)
    frames = np.asarray(frames)
    n = len(e)
    parent = np.arange(n)
    members_frames = [{int(f)} for f in frames]

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    sims = e @ e.T
    i_idx, j_idx = np.nonzero(np.triu(sims >= sim_min, 1))
    order = np.lexsort((j_idx, i_idx, -sims[i_idx, j_idx]))
    for k in order:
        a, b = find(int(i_idx[k])), find(int(j_idx[k]))
        if a == b or not members_frames[a].isdisjoint(members_frames[b]):
            continue
        a, b = min(a, b), max(a, b)
        parent[b] = a
        members_frames[a] |= members_frames[b]
    return first_order(np.array([find(i) for i in range(n)]))


def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = int(parent[x])
    return x


def finch(embeddings: np.ndarray, level: int = 1) -> np.ndarray:
    """FINCH (Sarfraz, Sharma and Stiefelhagen, CVPR 2019), parameter-free: every face links to its
    first neighbour (highest cosine); the components of those links are the first partition; the
    next level does the same on the partition's mean vectors. ``level`` picks the partition (FINCH
    itself returns them all; 1 is the finest). No constraints: C1C (Kalogeiton & Zisserman, BMVC
    2020) adds must-link/cannot-link, and the product's neighbourhood step
    (:func:`facepipe.clustering.people.neighbourhood_levels`) gates the links."""
    labels = np.arange(len(embeddings))
    vectors = np.asarray(embeddings, np.float64)
    for _ in range(level):
        k = int(labels.max()) + 1 if len(labels) else 0
        if k < 2:
            break
        sums = np.zeros((k, vectors.shape[1]))
        np.add.at(sums, labels, vectors)
        means = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        sims = means @ means.T
        np.fill_diagonal(sims, -np.inf)
        parent = np.arange(k)
        for a, b in enumerate(np.argmax(sims, axis=1)):
            ra, rb = _find(parent, a), _find(parent, int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        roots = np.array([_find(parent, i) for i in range(k)])
        labels = np.unique(roots, return_inverse=True)[1][labels]
    return first_order(labels)
