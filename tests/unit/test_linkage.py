"""The sparse average linkage equals the dense pass wherever both run."""

from __future__ import annotations

import numpy as np
import pytest

from facepipe.clustering.linkage import average_linkage, candidate_pairs
from tests.reference import dense_merge_identities


def _groups(seed: int, people: int, groups: int, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Groups of noisy unit vectors around random people: sums and sizes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    sizes = rng.integers(1, 6, size=groups)
    sums = np.zeros((groups, dim))
    for g, size in enumerate(sizes):
        who = rng.integers(0, people)
        points = centres[who] + rng.uniform(0.3, 1.5) * rng.normal(size=(size, dim))
        sums[g] = (points / np.linalg.norm(points, axis=1, keepdims=True)).sum(axis=0)
    return sums, sizes.astype(np.float64)


@pytest.mark.parametrize("seed", range(40))
def test_sparse_equals_dense_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    sums, sizes = _groups(seed, people=int(rng.integers(1, 6)), groups=int(rng.integers(2, 40)))
    n = len(sums)
    pairs = [sorted(map(int, rng.choice(n, 2, replace=False))) for _ in range(int(rng.integers(0, n)))]
    cannot = {(a, b) for a, b in pairs}
    for thresh in (0.05, 0.25, 0.4, 0.7):
        expected = dense_merge_identities(sums, sizes, cannot, thresh)
        assert average_linkage(sums, sizes, cannot, thresh).tolist() == expected.tolist(), (seed, thresh)


def test_candidates_are_exactly_the_pairs_at_or_above_the_threshold() -> None:
    sums, sizes = _groups(7, people=3, groups=60)
    linkage = (sums @ sums.T) / np.outer(sizes, sizes)
    for thresh in (0.1, 0.3, 0.6):
        expected = {(i, j) for i in range(60) for j in range(i + 1, 60) if linkage[i, j] >= thresh}
        found = candidate_pairs(sums, sizes, thresh)
        assert set(found) == expected
        for (i, j), dot in found.items():
            assert dot == pytest.approx(sums[i] @ sums[j], rel=1e-12)


def test_a_group_never_joins_across_a_cannot_link() -> None:
    a = np.array([1.0, 0.0])
    sums = np.stack([a, a, a])
    parent = average_linkage(sums, np.ones(3), {(0, 2)}, 0.5)
    assert parent.tolist() == [0, 0, 2]  # 1 joined 0 first, so 2 may join neither
