"""The merge pass (facepipe.merge) and the candidate methods the accuracy benchmark compares
(bench/clustering_options.py), on small synthetic runs (no models, no Redis)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from facepipe.identity import IdentityBank
from facepipe.merge import compact, cooccurring_pairs, merge_identities, merge_run
from tests.helpers import ROOT
from tests.reference import reference_cluster

sys.path.insert(0, str(ROOT / "bench"))
from clustering_options import Method, OnlineClusterer, iou_matrix  # noqa: E402
from clustering_options import cluster as run_method  # noqa: E402

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
def test_seed_method_is_the_seed_algorithm(thresh: float) -> None:
    frames, emb, boxes = synthetic_run(1)
    ours = run_method(frames, emb, boxes, Method(sim_thresh=thresh, refine_limit=5), 3)
    ref = reference_cluster(emb, thresh, 5)
    assert ours.tolist() == ref["assignments"]
    bank = IdentityBank()
    assert ours.tolist() == [bank.match_or_add(e, thresh, 5).identity for e in emb]


def test_cooccur_keeps_two_faces_of_one_frame_apart(basis: np.ndarray) -> None:
    a = basis[0]
    twins = np.stack([a, blend(a, basis[1], 0.9)])
    boxes = np.array([[0, 0, 10, 10], [50, 0, 60, 10]], dtype=np.float32)
    frames = np.array([0, 0])
    assert run_method(frames, twins, boxes, Method(), 1).tolist() == [0, 0]
    assert run_method(frames, twins, boxes, Method(cooccur=True), 1).tolist() == [0, 1]
    # a later face joins the best remaining identity, not a new one
    three = np.stack([a, blend(a, basis[1], 0.9), blend(a, basis[2], 0.8)])
    frames3 = np.array([0, 0, 3])
    boxes3 = np.concatenate([boxes, boxes[:1]])
    assert run_method(frames3, three, boxes3, Method(cooccur=True), 3).tolist() == [0, 1, 0]


def test_track_links_a_turned_face_but_not_across_a_gap_or_below_the_floor(basis: np.ndarray) -> None:
    a = basis[0]
    turned = blend(a, basis[1], 0.25)  # below 0.4, above the 0.2 floor
    stranger = blend(a, basis[2], 0.1)  # below the floor
    box = [100, 100, 200, 220]
    moved = [110, 105, 210, 225]  # IoU ~0.75 with box
    emb = np.stack([a, turned])
    boxes = np.array([box, moved], dtype=np.float32)
    seed = Method(sim_thresh=0.4)
    track = Method(sim_thresh=0.4, track=True, track_floor=0.2)
    assert run_method(np.array([0, 3]), emb, boxes, seed, 3).tolist() == [0, 1]
    assert run_method(np.array([0, 3]), emb, boxes, track, 3).tolist() == [0, 0]
    assert run_method(np.array([0, 6]), emb, boxes, track, 3).tolist() == [0, 1]  # a sampled frame missed
    assert run_method(np.array([0, 6]), emb, boxes, track.with_(max_gap=2), 3).tolist() == [0, 0]
    far = np.array([box, [600, 100, 700, 220]], dtype=np.float32)
    assert run_method(np.array([0, 3]), emb, far, track, 3).tolist() == [0, 1]  # moved away
    emb2 = np.stack([a, stranger])
    assert run_method(np.array([0, 3]), emb2, boxes, track, 3).tolist() == [0, 1]


def test_iou_matrix() -> None:
    m = iou_matrix(np.array([[0, 0, 10, 10], [0, 0, 5, 10]]), np.array([[0, 0, 10, 10], [20, 20, 30, 30]]))
    assert m.shape == (2, 2)
    assert m[0, 0] == 1.0 and m[1, 0] == pytest.approx(0.5) and m[0, 1] == 0.0


def test_merge_identities_average_linkage_respects_cooccurrence(basis: np.ndarray) -> None:
    a = basis[0]
    # cosines: 0-1 0.6, 0-3 0.55, 1-3 0.33, 2 orthogonal to all
    vectors = np.stack([a, blend(a, basis[2], 0.6), basis[1], blend(a, basis[3], 0.55)]).astype(np.float64)
    weights = np.ones(4)
    # 0+1 first (0.6); then {0,1}-3 averages (0.55 + 0.33) / 2 = 0.44
    assert merge_identities(vectors, weights, set(), 0.5).tolist() == [0, 0, 2, 3]
    assert merge_identities(vectors, weights, set(), 0.4).tolist() == [0, 0, 2, 0]
    # 0 and 1 share a frame: 1 may not join 0, nor any group 0 is in
    assert merge_identities(vectors, weights, {(0, 1)}, 0.5).tolist() == [0, 1, 2, 0]
    assert merge_identities(vectors, weights, {(0, 1)}, 0.3).tolist() == [0, 1, 2, 0]
    assert compact(np.array([0, 1, 2, 0])).tolist() == [0, 1, 2, 0]
    assert compact(np.array([0, 0, 2, 0])).tolist() == [0, 0, 1, 0]
    assert merge_identities(vectors, weights, set(), 0.99).tolist() == [0, 1, 2, 3]


def test_merge_run_from_persisted_faces_equals_the_merge_step(basis: np.ndarray) -> None:
    frames, emb, boxes = synthetic_run(2, people=5, frames=80)
    online = run_method(frames, emb, boxes, Method(sim_thresh=0.55), 3)
    merged = run_method(frames, emb, boxes, Method(sim_thresh=0.55, merge=0.3), 3)
    mapping = merge_run(frames, online, emb, 0.3)
    assert mapping[online].tolist() == merged.tolist()
    assert len(set(online.tolist())) > len(set(merged.tolist()))  # the high threshold split people
    assert cooccurring_pairs([0, 0, 3, 3, 3], [0, 1, 1, 2, 2]) == {(0, 1), (1, 2)}


@pytest.mark.parametrize(
    "method",
    [
        Method(sim_thresh=0.4, cooccur=True, track=True, merge=0.25),
        Method(sim_thresh=0.3, track=True, track_floor=0.1, track_refine=False),
    ],
)
def test_state_restored_between_chunks_gives_the_same_run(method: Method) -> None:
    frames, emb, boxes = synthetic_run(3)
    whole = run_method(frames, emb, boxes, method, 3)
    cut = int(np.searchsorted(frames, frames[len(frames) // 2]))
    first = OnlineClusterer(method, 3)
    ids = []
    for part, clusterer in ((slice(0, cut), first), (slice(cut, None), None)):
        if clusterer is None:
            state = first.state()
            bank = IdentityBank()
            for i in range(len(first.bank)):
                bank.add(
                    first.bank.embeddings[i],
                    first.bank.centroids[i],
                    first.bank.refine_counts[i],
                    first.bank.counts[i],
                )
            clusterer = OnlineClusterer.restore(method, 3, bank, state)
            last = clusterer
        f, e, b = frames[part], emb[part], boxes[part]
        for frame in np.unique(f):
            sel = f == frame
            ids += [m.identity for m in clusterer.add_frame(int(frame), e[sel], b[sel])]
    assert last.final_identities()[ids].tolist() == whole.tolist()


def test_frames_must_come_in_order() -> None:
    c = OnlineClusterer(Method())
    c.add_frame(3, np.zeros((0, DIM)), np.zeros((0, 4)))
    with pytest.raises(ValueError):
        c.add_frame(3, np.zeros((0, DIM)), np.zeros((0, 4)))
