"""Unit tests that pin the math: blur metrics, chunk planning, match-or-add."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facepipe.clustering.identity import IdentityTable
from facepipe.media.blur import BlurGate, laplacian_variance
from facepipe.media.plan import plan_chunks
from facepipe.settings import parse_size
from tests.conftest import insightface_image
from tests.reference import reference_cluster


def _manual_laplacian_variance(gray: np.ndarray) -> float:
    """4-neighbour Laplacian with reflected borders (OpenCV's BORDER_REFLECT_101), by hand."""
    g = np.pad(gray.astype(np.float64), 1, mode="reflect")
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def test_laplacian_variance_matches_hand_computation() -> None:
    gray = cv2.cvtColor(insightface_image(), cv2.COLOR_BGR2GRAY)[:200, :300]
    assert laplacian_variance(gray) == pytest.approx(_manual_laplacian_variance(gray), rel=1e-9)


def test_blur_lowers_the_score_and_the_gate_skips_blurred_frames() -> None:
    sharp = insightface_image()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 6)
    gate = BlurGate(var_thresh=120)
    assert gate.score(sharp) > 120 > gate.score(blurred)
    assert gate.is_sharp(sharp) and not gate.is_sharp(blurred)


def test_grid_gate_keeps_a_frame_with_enough_sharp_tiles() -> None:
    sharp = insightface_image()
    half = sharp.copy()
    half[:, half.shape[1] // 4 :] = cv2.GaussianBlur(half, (0, 0), 8)[:, half.shape[1] // 4 :]
    tiles = BlurGate(var_thresh=120, grid=4).tile_scores(half)
    assert tiles.shape == (16,)
    sharp_share = float(np.mean(tiles >= 120))
    assert 0 < sharp_share < 0.5
    assert BlurGate(var_thresh=120, grid=4, grid_min_keep=sharp_share).is_sharp(half)
    assert not BlurGate(var_thresh=120, grid=4, grid_min_keep=sharp_share + 0.01).is_sharp(half)
    # The global score on the same frame says "blurry": the grid is what keeps it.
    assert BlurGate(var_thresh=120, grid=0).score(half) < BlurGate(var_thresh=120).score(sharp)


def test_blur_resize_shrinks_before_scoring() -> None:
    gate = BlurGate(resize=320)
    assert max(gate._gray(insightface_image()).shape) == 320


@pytest.mark.parametrize("frames,step,size", [(275, 3, 8), (10, 15, 8), (1, 1, 1), (100, 1, 7), (121, 15, 8)])
def test_plan_chunks_covers_every_sampled_frame_once_in_order(frames: int, step: int, size: int) -> None:
    chunks = plan_chunks(frames, step, size)
    sampled = [f for c in chunks for f in c.frames(step)]
    assert sampled == list(range(0, frames, step))
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert all(len(c.frames(step)) <= size for c in chunks)
    assert all(c.stop <= frames for c in chunks)


def test_plan_chunks_rejects_zero_step() -> None:
    with pytest.raises(ValueError):
        plan_chunks(10, 0, 8)


def test_parse_size() -> None:
    assert parse_size("640x480") == (640, 480)
    for bad in ("640", "axb", "630x640", "0x0"):
        with pytest.raises(ValueError):
            parse_size(bad)


def _unit(rng: np.random.Generator, n: int, dim: int = 512) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(rng: np.random.Generator, people: int, per: int, noise: float) -> np.ndarray:
    centres = _unit(rng, people)
    faces = np.repeat(centres, per, axis=0) + noise * rng.normal(size=(people * per, 512)).astype(np.float32)
    faces = faces[rng.permutation(len(faces))]
    return (faces / np.linalg.norm(faces, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("refine_limit", [1, 3, 30])
def test_match_or_add_equals_the_plain_reference(refine_limit: int) -> None:
    rng = np.random.default_rng(7)
    faces = _clustered(rng, people=6, per=20, noise=0.04)
    bank = IdentityTable(capacity=2)  # forces the matrix to grow
    matches = [bank.match_or_add(f, 0.27, refine_limit) for f in faces]
    ref = reference_cluster(faces, 0.27, refine_limit)
    assert [m.identity for m in matches] == ref["assignments"]
    assert len(bank) == len(ref["identities"]) == 6
    for i, ident in enumerate(ref["identities"]):
        assert bank.counts[i] == ident["count"]
        assert bank.refine_counts[i] == ident["refine_count"] == min(ident["count"], refine_limit)
        np.testing.assert_allclose(bank.centroids[i], ident["centroid"], atol=1e-5)
        np.testing.assert_array_equal(bank.embeddings[i], ident["embedding"])
    for m, s in zip(matches, ref["similarities"], strict=True):
        assert (m.similarity is None) == (s is None)
        if s is not None:
            assert m.similarity == pytest.approx(s, abs=1e-5)


def test_centroid_is_the_renormalised_running_mean_until_the_refine_limit() -> None:
    rng = np.random.default_rng(1)
    base = _unit(rng, 1)[0]
    faces = [(base + 0.05 * v) / np.linalg.norm(base + 0.05 * v) for v in _unit(rng, 5)]
    bank = IdentityTable()
    for f in faces:
        bank.match_or_add(f, 0.5, refine_limit=3)
    expected = faces[0]
    for n, f in enumerate(faces[1:3], start=1):
        expected = (expected * n + f) / (n + 1)
        expected = expected / np.linalg.norm(expected)
    np.testing.assert_allclose(bank.centroids[0], expected, atol=1e-6)
    assert bank.counts == [5] and bank.refine_counts == [3]
    assert np.linalg.norm(bank.centroids[0]) == pytest.approx(1.0, abs=1e-6)


def test_threshold_is_inclusive_and_below_it_founds_a_new_identity() -> None:
    bank = IdentityTable()
    a = np.zeros(512, dtype=np.float32)
    a[0] = 1
    b = np.zeros(512, dtype=np.float32)
    b[0], b[1] = 0.5, np.sqrt(0.75)
    bank.match_or_add(a, 0.5, 30)
    assert bank.match_or_add(b, 0.5, 30).identity == 0  # cos = 0.5 >= 0.5 merges
    c = np.zeros(512, dtype=np.float32)
    c[2] = 1
    assert bank.match_or_add(c, 0.5, 30).identity == 1  # cos = 0 founds
