"""Plain reference implementations the tests hold facepipe to.

Written the obvious way (Python loops, float64 where it does not matter), independent
of facepipe's vectorised code, so that a bug in one is not repeated in the other.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def reference_cluster(embeddings: np.ndarray, sim_thresh: float, refine_limit: int) -> dict:
    """The seed's online match-or-add, one face at a time, one identity at a time."""
    identities: list[dict] = []
    assignments: list[int] = []
    similarities: list[float | None] = []
    for emb in embeddings:
        emb = np.asarray(emb, dtype=np.float32)
        best, best_sim = -1, -2.0
        for i, ident in enumerate(identities):
            sim = float(np.dot(ident["centroid"].astype(np.float64), emb.astype(np.float64)))
            if sim > best_sim:
                best, best_sim = i, sim
        if best >= 0 and best_sim >= sim_thresh:
            ident = identities[best]
            ident["count"] += 1
            if ident["refine_count"] < refine_limit:
                n = ident["refine_count"]
                mean = (ident["centroid"] * n + emb) / (n + 1)
                ident["centroid"] = (mean / np.linalg.norm(mean)).astype(np.float32)
                ident["refine_count"] = n + 1
            assignments.append(best)
            similarities.append(best_sim)
        else:
            identities.append({"embedding": emb, "centroid": emb.copy(), "refine_count": 1, "count": 1})
            assignments.append(len(identities) - 1)
            similarities.append(None)
    return {"identities": identities, "assignments": assignments, "similarities": similarities}


def sequential_run(video: str, params, detector, embedder) -> dict:
    """The whole seed algorithm in one plain loop over the sampled frames, in order.

    ``params`` is anything with the settings' attribute names (a ``Settings`` works);
    ``det_input`` 'auto' is fitted to the frame as ``facepipe run`` fits it.
    """
    import cv2

    from facepipe.inference.align import align
    from facepipe.settings import auto_det_input

    cap = cv2.VideoCapture(video)
    embeddings, faces = [], []
    index = 0
    while True:
        ok = cap.grab()
        if not ok:
            break
        if index % params.frame_step == 0:
            _, frame = cap.retrieve()
            size = params.det_input
            if size == "auto":
                size = auto_det_input(frame.shape[1], frame.shape[0])
            found = detector.detect(
                frame,
                input_size=tuple(size),
                det_thresh=params.det_thresh,
                nms_thresh=params.nms_thresh,
                min_face=params.min_face,
            )
            crops = [align(frame, f) for f in found]
            if crops:
                embeddings.extend(embedder.embed(crops))
            faces.extend({"frame": index, "bbox": [float(v) for v in f.bbox]} for f in found)
        index += 1
    cap.release()
    result = reference_cluster(np.array(embeddings), params.sim_thresh, params.refine_limit)
    result["faces"] = faces
    result["final"] = result["assignments"]
    merge_thresh = params.merge_thresh
    if merge_thresh and len(result["identities"]) > 1:
        from facepipe.clustering.people import merge_run  # tested on its own in test_clustering.py

        mapping = merge_run(
            [f["frame"] for f in faces],
            result["assignments"],
            np.array(embeddings),
            merge_thresh,
            n_identities=len(result["identities"]),
        )
        result["final"] = [int(mapping[a]) for a in result["assignments"]]
    result["final_counts"] = {str(k): result["final"].count(k) for k in sorted(set(result["final"]))}
    return result


def dense_merge_identities(
    vectors: np.ndarray, weights: np.ndarray, cooccur: Iterable[tuple[int, int]], thresh: float
) -> np.ndarray:
    """The dense average linkage (O(n^3), n^2 memory) that facepipe's sparse pass must equal.

    Average-linkage agglomeration of identities; returns old id -> representative (lowest) id.

    Identity ``i`` is ``weights[i]`` points whose *sum* is ``vectors[i]``, so the linkage of
    groups ``G`` and ``H``, the mean similarity over all their cross pairs of points, is
    ``(sum_G vectors) . (sum_H vectors) / (W_G * W_H)``. With ``vectors`` the sums of the
    unit face embeddings this is exactly the mean face-to-face cosine (UPGMA over faces,
    constrained to the online partition); with count-weighted centroids it is the
    count-weighted mean centroid cosine. The best pair is merged while its linkage is
    ``>= thresh``, skipping pairs where any member of one co-occurred with any of the other.
    Deterministic: ties go to the lowest ``(i, j)``.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    weight = np.asarray(weights, dtype=np.float64).copy()
    forbidden = np.zeros((n, n), dtype=bool)
    for a, b in cooccur:
        forbidden[a, b] = forbidden[b, a] = True
    sums = vectors.copy()
    active = np.ones(n, dtype=bool)
    parent = np.arange(n)
    dots = sums @ sums.T
    while True:
        linkage = dots / np.outer(weight, weight)
        allowed = np.triu(np.outer(active, active), 1) & ~forbidden
        if not allowed.any():
            break
        linkage = np.where(allowed, linkage, -np.inf)
        flat = int(np.argmax(linkage))
        i, j = divmod(flat, n)
        if linkage[i, j] < thresh:
            break
        # j joins i (i < j, so the representative stays the lowest id)
        sums[i] += sums[j]
        weight[i] += weight[j]
        dots[i, :] += dots[j, :]
        dots[:, i] += dots[:, j]
        forbidden[i, :] |= forbidden[j, :]
        forbidden[:, i] |= forbidden[:, j]
        active[j] = False
        parent[parent == j] = i
    return parent


def in_process_run(video: str, settings, detector, embedder) -> list:
    """The result a single process computes walking the sampled frames in order: facepipe's own
    stages chunk after chunk in one process, then :func:`~facepipe.clustering.run.cluster_records`
    (the writer's decisions and the final pass). What any number of workers, any timing and any
    fault must reproduce (the final face lines)."""
    from facepipe.clustering.run import cluster_records
    from facepipe.inference.chunk import detect_chunk, embed_record
    from facepipe.media.plan import plan_chunks
    from facepipe.media.probe import probe
    from facepipe.records import RunParams

    info = probe(video)
    params = RunParams.build(settings, info)
    records = (
        embed_record(detect_chunk(chunk, params, detector), embedder, keep_crops=False)
        for chunk in plan_chunks(info.frame_count, settings.frame_step, settings.chunk_size)
    )
    return cluster_records(records, params).faces
