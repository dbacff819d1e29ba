"""People from groups of faces: the final passes that join tracks, or online identities, that are
one person.

Both run once a run is complete (see :mod:`facepipe.clustering.final`), read only what the writer
persisted, and are deterministic. Both use average linkage over faces (UPGMA: the mean
cosine over every pair of faces of two groups), merging the most similar pair while it is
``>= thresh`` and never joining two groups that appear together in one frame:

* :func:`cluster_tracks` (``--clustering tracks``, the default): the groups are face tracks
  (:mod:`facepipe.clustering.tracks`), so a track's faces always stay together; tracks made
  only of suspect faces (:func:`facepipe.clustering.gate.is_suspect`) found nothing: each joins the person it
  best matches, or is rejected as no face;
* :func:`merge_run` (``--clustering online``): the groups are the writer's online identities.

Chosen in an offline study of every label set (each constant swept; the chosen values sit
on plateaus where every clean set is perfect); ``bench/accuracy.py`` scores the modes, their
ablations and the peers (README, "Accuracy").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facepipe.clustering.linkage import average_linkage, compact, cooccurring_pairs, group_sums


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
    identity). Average linkage of the identities' faces (the mean face-to-face cosine,
    :func:`~facepipe.clustering.linkage.average_linkage`), never joining identities that share a
    frame. Deterministic and idempotent on the same input, so it can run (again) at finalisation.
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
    return compact(average_linkage(sums, counts, pairs, thresh))


def cluster_tracks(
    tracks: Sequence[int],
    frames: Sequence[int],
    embeddings: np.ndarray,
    suspect: Sequence[bool],
    thresh: float,
) -> np.ndarray:
    """The final identity of every face (``-1``: rejected), identities numbered ``0..K-1`` in the
    order of their first face.

    1. Tracks with at least one non-suspect face are grouped by average linkage at ``thresh``
       (must-link: a track's faces; cannot-link: tracks that share a frame). ``thresh`` 0 keeps
       every track apart.
    2. Each track of suspect faces only, in track order, joins the group whose faces it averages
       the highest cosine with, if that is ``>= thresh`` and they share no frame; otherwise its
       faces are rejected (a dark blob the detector took for a face, seen by nobody else).
    """
    tracks = np.asarray(tracks, dtype=np.int64)
    frames = np.asarray(frames, dtype=np.int64)
    suspect = np.asarray(suspect, dtype=bool)
    n_faces = len(tracks)
    if n_faces == 0:
        return np.zeros(0, dtype=np.int64)
    units = compact(tracks)  # track -> 0..U-1 in track order
    n_units = int(units.max()) + 1
    good_unit = np.bincount(units, weights=(~suspect).astype(np.float64), minlength=n_units) > 0
    good_face = good_unit[units]
    # 1. average linkage between the tracks with a good face (all their faces take part)
    good_ids = np.flatnonzero(good_unit)
    position = np.full(n_units, -1, dtype=np.int64)
    position[good_ids] = np.arange(len(good_ids))
    face_group = position[units[good_face]]
    sums = group_sums(face_group, np.asarray(embeddings)[good_face], len(good_ids))
    sizes = np.bincount(face_group, minlength=len(good_ids)).astype(np.float64)
    if thresh > 0 and len(good_ids) > 1:
        cannot = cooccurring_pairs(frames[good_face], face_group)
        group_of = compact(average_linkage(sums, sizes, cannot, thresh))
    else:
        group_of = np.arange(len(good_ids), dtype=np.int64)
    labels = np.full(n_faces, -1, dtype=np.int64)
    labels[good_face] = group_of[face_group]
    # 2. tracks of suspect faces: join a person, or are no face
    if thresh > 0 and len(good_ids):
        _attach_suspect_tracks(labels, units, frames, embeddings, np.flatnonzero(~good_unit), thresh)
    return _number_by_first_face(labels)


def _attach_suspect_tracks(
    labels: np.ndarray,
    units: np.ndarray,
    frames: np.ndarray,
    embeddings: np.ndarray,
    suspect_units: np.ndarray,
    thresh: float,
) -> None:
    """Step 2 of :func:`cluster_tracks`, in place. Suspect tracks are compared with the groups of
    good faces only (they never found or chain groups)."""
    good = labels >= 0
    k = int(labels[good].max()) + 1
    sums = group_sums(labels[good], np.asarray(embeddings)[good], k)
    sizes = np.bincount(labels[good], minlength=k).astype(np.float64)
    frame_sets: list[set[int]] = [set() for _ in range(k)]
    for frame, label in zip(frames[good].tolist(), labels[good].tolist(), strict=True):
        frame_sets[label].add(frame)
    for unit in suspect_units:
        members = np.flatnonzero(units == unit)
        unit_sum = np.asarray(embeddings)[members].astype(np.float64).sum(axis=0)
        linkage = (sums @ unit_sum) / (sizes * len(members))
        unit_frames = set(frames[members].tolist())
        for group in np.argsort(-linkage, kind="stable"):
            if linkage[group] < thresh:
                break
            if frame_sets[group].isdisjoint(unit_frames):
                labels[members] = group
                frame_sets[group] |= unit_frames
                break


def _number_by_first_face(labels: np.ndarray) -> np.ndarray:
    """Renumber labels ``0..K-1`` by the position of each one's first face; -1 stays -1."""
    kept = labels >= 0
    if not kept.any():
        return labels
    _, first = np.unique(labels[kept], return_index=True)
    order = np.unique(labels[kept])[np.argsort(first, kind="stable")]
    rank = np.empty(int(labels.max()) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    out = labels.copy()
    out[kept] = rank[labels[kept]]
    return out
