"""The final pass over tracks (``facepipe.clustering.people``): average linkage, then poorly seen
groups join the person their neighbourhood names. Its constraints (a track never splits, two faces
of one frame never join), the montage guard (people seen once each stay apart) and its scale."""

from __future__ import annotations

import numpy as np
import pytest

from facepipe.clustering.people import cluster_tracks, neighbourhood_levels

DIM = 512


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def person_faces(rng, centre: np.ndarray, n: int, spread: float) -> np.ndarray:
    """``n`` unit faces around ``centre``; ``spread`` 1.2 gives cosine ~0.64 to the centre."""
    return unit(centre + rng.standard_normal((n, DIM)) * spread / np.sqrt(DIM))


def scene(seed: int = 0):
    """Three people: each one well-seen track; person 0 also a poorly seen splinter that average
    linkage at 0.25 leaves apart (its faces are mostly noise, a little of person 0)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((3, DIM)))
    tracks, frames, faces, norms = [], [], [], []
    frame = 0
    for p in range(3):
        f = person_faces(rng, centres[p], 10, 1.0)
        tracks += [p] * 10
        frames += list(range(frame, frame + 30, 3))
        frame += 30
        faces.append(f)
        norms += [23.0] * 10
    splinter = unit(0.25 * centres[0] + rng.standard_normal((3, DIM)) / np.sqrt(DIM))
    tracks += [3] * 3
    frames += list(range(frame, frame + 9, 3))
    faces.append(splinter)
    norms += [15.0] * 3
    return (
        np.array(tracks),
        np.array(frames),
        np.concatenate(faces),
        np.zeros(len(tracks), bool),
        np.array(norms),
    )


def test_splinter_joins_its_person():
    tracks, frames, faces, suspect, norms = scene()
    today = cluster_tracks(tracks, frames, faces, suspect, 0.25)
    assert today.max() + 1 == 4  # today: the splinter is a person of its own
    labels = cluster_tracks(tracks, frames, faces, suspect, 0.25, norms=norms)
    assert labels.max() + 1 == 3
    assert len(set(labels[tracks == 3])) == 1 and labels[tracks == 3][0] == labels[0]


def test_without_norms_or_with_every_face_well_seen_it_is_plain_average_linkage():
    tracks, frames, faces, suspect, _ = scene()
    plain = cluster_tracks(tracks, frames, faces, suspect, 0.25)
    assert plain.max() + 1 == 4  # the splinter apart
    for norms in ([None] * len(tracks), np.full(len(tracks), np.nan), np.full(len(tracks), 25.0)):
        labels = cluster_tracks(tracks, frames, faces, suspect, 0.25, norms=norms)
        np.testing.assert_array_equal(labels, plain)


def test_well_seen_splinter_stays_apart():
    """Two clearly seen faces that disagree are two people: the same splinter, clearly seen, stays."""
    tracks, frames, faces, suspect, norms = scene()
    norms = np.where(tracks == 3, 23.0, norms)
    assert cluster_tracks(tracks, frames, faces, suspect, 0.25, norms=norms).max() + 1 == 4


def test_never_joins_faces_of_one_frame():
    """The splinter shares a frame with its person: it may not join (cannot-link), whatever its
    neighbourhood says; and no identity ever holds two faces of one frame."""
    tracks, frames, faces, suspect, norms = scene()
    frames = frames.copy()
    frames[tracks == 3] = frames[tracks == 0][:3]
    order = np.argsort(frames, kind="stable")
    tracks, frames, faces, norms = tracks[order], frames[order], faces[order], norms[order]
    labels = cluster_tracks(tracks, frames, faces, suspect, 0.25, norms=norms)
    assert labels[tracks == 3][0] != labels[tracks == 0][0]
    pairs = set(zip(frames.tolist(), labels.tolist(), strict=True))
    assert len(pairs) == len(labels)


@pytest.mark.parametrize("seed", range(5))
def test_random_scenes_keep_the_constraints(seed):
    """Many people, many poorly seen tracks, crowded frames: no identity holds two faces of one
    frame and no track is split."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((12, DIM)))
    tracks, frames, faces, norms = [], [], [], []
    for t in range(120):
        p = int(rng.integers(12))
        n = int(rng.integers(1, 6))
        start = int(rng.integers(0, 60)) * 3
        poor = rng.random() < 0.5
        tracks += [t] * n
        frames += list(range(start, start + 3 * n, 3))
        faces.append(person_faces(rng, centres[p], n, 2.5 if poor else 1.2))
        norms += list(rng.uniform(10, 18, n) if poor else rng.uniform(20, 26, n))
    tracks, frames, faces, norms = np.array(tracks), np.array(frames), np.concatenate(faces), np.array(norms)
    order = np.lexsort((tracks, frames))
    tracks, frames, faces, norms = tracks[order], frames[order], faces[order], norms[order]
    suspect = rng.random(len(tracks)) < 0.05
    labels = cluster_tracks(tracks, frames, faces, suspect, 0.25, norms=norms)
    kept = labels >= 0
    pairs = set(zip(frames[kept].tolist(), labels[kept].tolist(), strict=True))
    assert len(pairs) == int(kept.sum()), "two faces of one frame in one identity"
    for t in np.unique(tracks):
        assert len(set(labels[tracks == t].tolist())) == 1, f"track {t} split"
    # identities numbered 0..K-1 by first face
    seen = []
    for x in labels[kept].tolist():
        if x not in seen:
            seen.append(x)
    assert seen == list(range(len(seen)))


@pytest.mark.parametrize("poor", [False, True])
@pytest.mark.parametrize("seed", [7, 8, 9])
def test_montage_guard(poor, seed):
    """N people, one track each, every one's nearest neighbour another person (a talk-show
    montage): they stay N people, clearly seen or poorly seen."""
    rng = np.random.default_rng(seed)
    n = 27
    base = unit(rng.standard_normal(DIM))
    # people who look alike: two people's faces meet at about 0.2 (as the montage's guests do)
    centres = unit(0.65 * base + rng.standard_normal((n, DIM)) / np.sqrt(DIM))
    tracks, frames, faces, norms = [], [], [], []
    for p in range(n):
        k = int(rng.integers(1, 16))
        tracks += [p] * k
        frames += list(range(p * 100, p * 100 + 3 * k, 3))
        faces.append(person_faces(rng, centres[p], k, 1.0))
        norms += [15.0 if poor else 23.0] * k
    tracks, frames, faces, norms = np.array(tracks), np.array(frames), np.concatenate(faces), np.array(norms)
    sums = np.array([faces[tracks == p].sum(0) for p in range(n)])
    sizes = np.bincount(tracks)
    linkage = (sums @ sums.T) / np.outer(sizes, sizes)
    np.fill_diagonal(linkage, -1)
    # everyone's first neighbour, another person, is above the floor: only the margin holds them
    assert linkage.max(axis=1).min() > 0.12
    assert cluster_tracks(tracks, frames, faces, np.zeros(len(tracks), bool), 0.15).max() + 1 < n
    assert cluster_tracks(tracks, frames, faces, np.zeros(len(tracks), bool), 0.25).max() + 1 == n
    labels = cluster_tracks(tracks, frames, faces, np.zeros(len(tracks), bool), 0.25, norms=norms)
    assert labels.max() + 1 == n
    if poor:  # what holds them apart is the margin: without it first neighbours chain people
        nobody = np.zeros(len(tracks), bool)
        without = cluster_tracks(tracks, frames, faces, nobody, 0.25, norms=norms, margin=0.0)
        assert without.max() + 1 < n


def test_deterministic_and_order_of_ids():
    tracks, frames, faces, suspect, norms = scene(3)
    a = cluster_tracks(tracks, frames, faces, suspect, 0.25, norms=norms)
    b = cluster_tracks(tracks.copy(), frames.copy(), faces.copy(), suspect.copy(), 0.25, norms=norms.copy())
    np.testing.assert_array_equal(a, b)
    assert a[0] == 0


def test_thresh_zero_keeps_tracks_apart():
    tracks, frames, faces, suspect, norms = scene()
    labels = cluster_tracks(tracks, frames, faces, suspect, 0.0, norms=norms)
    assert labels.max() + 1 == len(np.unique(tracks))


def test_suspect_only_track_is_rejected_or_joins_as_today():
    tracks, frames, faces, suspect, norms = scene()
    suspect = tracks == 3
    np.testing.assert_array_equal(
        cluster_tracks(tracks, frames, faces, suspect, 0.25, norms=norms),
        cluster_tracks(tracks, frames, faces, suspect, 0.25),
    )


def test_missing_norms_count_as_well_seen():
    """A face without a norm (``emb_norm`` None, as NaN) makes its group well seen: today's result."""
    tracks, frames, faces, suspect, norms = scene()
    norms = np.where(tracks == 3, np.nan, norms)
    np.testing.assert_array_equal(
        cluster_tracks(tracks, frames, faces, suspect, 0.25, norms=norms),
        cluster_tracks(tracks, frames, faces, suspect, 0.25),
    )


def test_anchored_groups_never_join():
    """For the series pass: two groups that each hold a prior bank person never join."""

    rng = np.random.default_rng(1)
    c = unit(rng.standard_normal(DIM))
    vecs = np.stack([unit(c + rng.standard_normal(DIM) * s / np.sqrt(DIM)) for s in (0.5, 3.0, 0.5)])
    sums, sizes = vecs.astype(np.float64), np.ones(3)
    norms = np.array([23.0, 15.0, 23.0])
    free = neighbourhood_levels(np.array([0, 1, 2]), sums, sizes, norms, set(), floor=0.0, margin=-1.0)
    assert len(set(free.tolist())) < 3
    held = neighbourhood_levels(
        np.array([0, 1, 2]),
        sums,
        sizes,
        np.array([15.0, 15.0, 15.0]),
        set(),
        floor=0.0,
        margin=-1.0,
        anchored=np.array([True, False, True]),
    )
    assert held[0] != held[2]


def test_empty():
    assert len(cluster_tracks([], [], np.zeros((0, DIM), np.float32), [], 0.25, norms=[])) == 0
