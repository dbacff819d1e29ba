"""The seed's online match-or-add, the merge pass over online identities
(:mod:`facepipe.clustering.people`) and the box IoU, on small synthetic runs (no models, no Redis)."""

from __future__ import annotations

import numpy as np
import pytest

from facepipe.clustering.boxes import box_iou, iou_matrix
from facepipe.clustering.identity import IdentityTable
from facepipe.clustering.linkage import average_linkage, compact, cooccurring_pairs
from facepipe.clustering.people import merge_run
from tests.reference import dense_merge_identities, reference_cluster

DIM = 512


def unit(*rows: np.ndarray) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def blend(a: np.ndarray, b: np.ndarray, cos: float) -> np.ndarray:
    """A unit vector at cosine ``cos`` from unit ``a``, in the plane of ``a`` and ``b``."""
    b = b - (b @ a) * a
    b = b / np.linalg.norm(b)
    return unit(cos * a + np.sqrt(1 - cos * cos) * b)[0]


@pytest.fixture()
def basis() -> np.ndarray:
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, 8)))
    return q.T.astype(np.float32)  # 8 orthonormal rows


def synthetic_run(seed: int, people: int = 4, frames: int = 60):
    rng = np.random.default_rng(seed)
    centres = unit(*rng.normal(size=(people, DIM)))
    fr, emb, box = [], [], []
    for f in range(frames):
        present = sorted(rng.choice(people, size=rng.integers(1, 3), replace=False))
        for slot, p in enumerate(present):
            fr.append(3 * f)
            emb.append(unit(centres[p] + rng.normal(scale=0.045, size=DIM))[0])
            box.append([100 + 300 * slot, 100, 200 + 300 * slot, 220])
    return np.array(fr), np.array(emb, dtype=np.float32), np.array(box, dtype=np.float32)


@pytest.mark.parametrize("thresh", [0.27, 0.4])
def test_the_identity_table_is_the_seed_algorithm(thresh: float) -> None:
    _, emb, _ = synthetic_run(1)
    table = IdentityTable()
    ours = [table.match_or_add(e, thresh, 5).identity for e in emb]
    ref = reference_cluster(emb, thresh, 5)
    assert ours == ref["assignments"]
    assert table.counts == [ident["count"] for ident in ref["identities"]]
    for mine, theirs in zip(table.centroids, ref["identities"], strict=True):
        np.testing.assert_allclose(mine, theirs["centroid"], atol=1e-6)


def test_iou_matrix_and_box_iou_agree() -> None:
    m = iou_matrix(np.array([[0, 0, 10, 10], [0, 0, 5, 10]]), np.array([[0, 0, 10, 10], [20, 20, 30, 30]]))
    assert m.shape == (2, 2)
    assert m[0, 0] == 1.0 and m[1, 0] == pytest.approx(0.5) and m[0, 1] == 0.0
    assert box_iou([0, 0, 5, 10], [0, 0, 10, 10]) == m[1, 0]
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


def test_average_linkage_respects_cooccurrence(basis: np.ndarray) -> None:
    a = basis[0]
    # cosines: 0-1 0.6, 0-3 0.55, 1-3 0.33, 2 orthogonal to all
    vectors = np.stack([a, blend(a, basis[2], 0.6), basis[1], blend(a, basis[3], 0.55)]).astype(np.float64)
    weights = np.ones(4)
    # 0+1 first (0.6); then {0,1}-3 averages (0.55 + 0.33) / 2 = 0.44
    assert average_linkage(vectors, weights, set(), 0.5).tolist() == [0, 0, 2, 3]
    assert average_linkage(vectors, weights, set(), 0.4).tolist() == [0, 0, 2, 0]
    # 0 and 1 share a frame: 1 may not join 0, nor any group 0 is in
    assert average_linkage(vectors, weights, {(0, 1)}, 0.5).tolist() == [0, 1, 2, 0]
    assert average_linkage(vectors, weights, {(0, 1)}, 0.3).tolist() == [0, 1, 2, 0]
    assert compact(np.array([0, 1, 2, 0])).tolist() == [0, 1, 2, 0]
    assert compact(np.array([0, 0, 2, 0])).tolist() == [0, 0, 1, 0]
    assert average_linkage(vectors, weights, set(), 0.99).tolist() == [0, 1, 2, 3]


def test_merge_run_joins_split_online_identities_as_the_dense_pass_does() -> None:
    frames, emb, _ = synthetic_run(2, people=5, frames=80)
    table = IdentityTable()
    online = np.array([table.match_or_add(e, 0.55, 30).identity for e in emb])
    mapping = merge_run(frames, online, emb, 0.3)
    n = len(table)
    sums = np.zeros((n, DIM))
    np.add.at(sums, online, emb.astype(np.float64))
    dense = compact(dense_merge_identities(sums, np.bincount(online), cooccurring_pairs(frames, online), 0.3))
    assert mapping.tolist() == dense.tolist()
    assert len(set(mapping.tolist())) < n  # the high online threshold split people; the pass joins them
    assert cooccurring_pairs([0, 0, 3, 3, 3], [0, 1, 1, 2, 2]) == {(0, 1), (1, 2)}
