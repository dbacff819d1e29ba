"""People from groups of faces: the final passes that join tracks, or online identities, that are
one person.

Both run once a run is complete (see :mod:`facepipe.clustering.final`), read only what the writer
persisted, and are deterministic; both start from average linkage over faces (UPGMA: the mean
cosine over every pair of faces of two groups), merging the most similar pair while it is
``>= thresh`` and never joining two groups that appear together in one frame:

* :func:`cluster_tracks` (``--clustering tracks``, the default): the groups are face tracks
  (:mod:`facepipe.clustering.tracks`), so a track's faces always stay together. Then **poorly
  seen groups join the person their neighbourhood names** (:func:`neighbourhood_levels`), and
  tracks made only of suspect faces (:func:`facepipe.clustering.gate.is_suspect`) join the person
  they best match, or are rejected as no face;
* :func:`merge_run` (``--clustering online``): the groups are the writer's online identities.

Why the neighbourhood step (issue 18, measured on 114 labelled views: ``bench/people_bench.py``,
README "Accuracy"). On ensemble-cast TV average linkage at 0.25 is precise but leaves
*splinters*: short tracks of a turned, dark, blurred or small face whose mean cosine to the
rest of their person stays below 0.25 (a 3-face track at 0.24, a child's profile at 0.20). A
lower threshold joins them but also joins different people (two talk-show guests meet at 0.21,
two women on the photo sets at 0.19): no linkage value separates the two. What does:

* **who is poorly seen.** The splinters that belong to someone were poorly seen: none of their
  faces reached a raw ArcFace norm of about 19 (``emb_norm``, the recogniser's own confidence;
  clearly seen faces are 21-26). Every wrong join a lower threshold makes is between two groups
  that each have a clearly seen face: two clearly seen faces that disagree are two people (the
  tracker's second tier, :data:`facepipe.clustering.tracks.WEAK_NORM`, rests on the same fact).
* **whom the neighbourhood names.** A splinter's most similar group (its first neighbour, as in
  FINCH, Sarfraz et al. CVPR 2019, and C1C, Kalogeiton & Zisserman BMVC 2020) is its own person,
  and it stands out from the next one by 0.2 or more; a poorly seen face of somebody with nobody
  of their own around has a first neighbour too, but one of several at about the same linkage.

So, after the average linkage, in FINCH-style levels, every poorly seen group (no face with a
norm of :data:`WEAK_NORM` or more) links to its first neighbour when that linkage is at least
:data:`FLOOR` and beats the group's best *rival* by at least :data:`MARGIN`; a well-seen group
links too, but only to a poorly seen first neighbour and by :data:`STRONG_MARGIN` (a poorly seen
splinter whose own first neighbour does not stand out, a poorly seen face at 0.24 to its person
and 0.18 to another, can still be its person's first neighbour by far: 0.24 against 0.07); the links
make the next level's groups; repeat until no group links. Every join holds a poorly seen group:
two clearly seen groups never join here (no rule separated the one right such link on the bench,
at a gap of 0.107, from a dozen wrong ones up to 0.151). The rival is the second most similar group it
may join; where there is none, the most similar group it may not join (a certain other person),
so the margin is never a formality. Each constant sits on a plateau of the sweeps
(``bench/people_bench.py --sweep``): ``FLOOR`` 0.06-0.12 and ``WEAK_NORM`` 19-20 give the same
result on every view; ``MARGIN`` loses no view from 0.08 to 0.10 (0.08 wins two more degraded
compilation views; 0.07 and below join strangers, so 0.10 keeps the distance); ``STRONG_MARGIN``
loses no view from 0.12 to 0.20 (from 0.18 on it joins nothing; 0.15 sits away from the one
wrong link found at 0.118).
Only ``--clustering tracks`` records the norms, so only it runs this step. Faces
without a norm (runs written before it was recorded) count as well seen: the result is then
the plain average linkage.

Scale: the average linkage is sparse and exact (:mod:`facepipe.clustering.linkage`); while any
group is poorly seen, a level needs one row of linkages per group (a blocked matrix product), so
20,000 tracks of 100,000 faces take 6 CPU-s, 12 when every track is poorly seen
(``bench/people_scale.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facepipe.clustering.linkage import average_linkage, compact, cooccurring_pairs, group_sums

#: a group may join its first neighbour only if none of its good faces has a raw ArcFace norm this high
WEAK_NORM = 19.0
#: ...and the first neighbour's linkage (mean face-to-face cosine) is at least this
FLOOR = 0.10
#: ...and beats the best rival's by at least this
MARGIN = 0.10
#: a well-seen group may link to its first neighbour if that neighbour is poorly seen, the linkage
#: is at least FLOOR and beats the well-seen group's best rival by at least this (None: never)
STRONG_MARGIN = 0.15
#: level cap (a level that links nothing ends the pass; measured: at most 2 levels link on any set)
LEVELS = 20
#: rows of linkages computed at once (bounds memory to BLOCK x groups floats)
BLOCK = 512


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
    norms: Sequence[float | None] | None = None,
    *,
    floor: float = FLOOR,
    margin: float = MARGIN,
    weak_norm: float = WEAK_NORM,
    strong_margin: float | None = STRONG_MARGIN,
) -> np.ndarray:
    """The final identity of every face (``-1``: rejected), identities numbered ``0..K-1`` in the
    order of their first face.

    1. Tracks with at least one non-suspect face are grouped by average linkage at ``thresh``
       (must-link: a track's faces; cannot-link: tracks that share a frame). ``thresh`` 0 keeps
       every track apart.
    2. With ``norms`` (each face's raw ArcFace norm, None or NaN where unknown): poorly seen
       groups join the person their neighbourhood names (:func:`neighbourhood_levels`, with
       ``floor``, ``margin``, ``weak_norm`` and ``strong_margin``: the module's constants unless a
       sweep changes them).
    3. Each track of suspect faces only, in track order, joins the group whose faces it averages
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
        if norms is not None:
            face_norms = np.array([np.nan if v is None else v for v in norms], dtype=np.float64)
            face_norms = np.where(np.isnan(face_norms), np.inf, face_norms)[good_face]  # unknown: well seen
            best_norm = np.full(len(good_ids), -np.inf)
            np.maximum.at(best_norm, face_group, face_norms)
            group_of = neighbourhood_levels(
                group_of,
                sums,
                sizes,
                best_norm,
                cannot,
                floor=floor,
                margin=margin,
                weak_norm=weak_norm,
                strong_margin=strong_margin,
            )
            group_of = compact(group_of)
    else:
        group_of = np.arange(len(good_ids), dtype=np.int64)
    labels = np.full(n_faces, -1, dtype=np.int64)
    labels[good_face] = group_of[face_group]
    # 3. tracks of suspect faces: join a person, or are no face
    if thresh > 0 and len(good_ids):
        _attach_suspect_tracks(labels, units, frames, embeddings, np.flatnonzero(~good_unit), thresh)
    return _number_by_first_face(labels)


def neighbourhood_levels(
    group_of: np.ndarray,
    unit_sums: np.ndarray,
    unit_sizes: np.ndarray,
    unit_norm: np.ndarray,
    cannot: set[tuple[int, int]],
    floor: float = FLOOR,
    margin: float = MARGIN,
    weak_norm: float = WEAK_NORM,
    levels: int = LEVELS,
    anchored: np.ndarray | None = None,
    strong_margin: float | None = STRONG_MARGIN,
) -> np.ndarray:
    """The neighbourhood step over units already grouped by average linkage (``group_of``: unit
    -> group): poorly seen groups join the person their neighbourhood names (module docstring);
    returns unit -> group.

    ``unit_sums``/``unit_sizes`` are each unit's summed unit embeddings and face count,
    ``unit_norm`` its best face norm (``inf``: well seen), ``cannot`` the unit pairs that share a
    frame. The series pass uses it with episode identities as units; ``anchored`` marks the
    units that are a prior bank's people, so that two groups holding anchors never join (the
    bank's people are never renumbered)."""
    k = int(group_of.max()) + 1
    sums = group_sums(group_of, unit_sums, k)
    sizes = np.bincount(group_of, weights=unit_sizes, minlength=k)
    best_norm = np.full(k, -np.inf)
    np.maximum.at(best_norm, group_of, unit_norm)
    anchor = np.zeros(k, dtype=bool)
    if anchored is not None:
        anchor[group_of[np.asarray(anchored, dtype=bool)]] = True
    conflicts: list[set[int]] = [set() for _ in range(k)]
    for a, b in cannot:
        ga, gb = int(group_of[a]), int(group_of[b])
        conflicts[ga].add(gb)
        conflicts[gb].add(ga)
    parent = np.arange(k)
    alive = np.ones(k, dtype=bool)
    for _ in range(levels):
        is_weak = best_norm < weak_norm
        weak = np.flatnonzero(alive & is_weak)
        if not len(weak):
            break  # every link holds a poorly seen group
        rows = weak if strong_margin is None else np.flatnonzero(alive)
        links = _first_neighbour_links(
            rows, sums, sizes, alive, conflicts, floor, margin, is_weak, strong_margin
        )
        joined = False
        for _, a, b in sorted(links):
            ra, rb = _root(parent, a), _root(parent, b)
            if ra == rb or rb in conflicts[ra] or (anchor[ra] and anchor[rb]):
                continue
            ra, rb = min(ra, rb), max(ra, rb)
            parent[rb] = ra
            alive[rb] = False
            sums[ra] += sums[rb]
            sizes[ra] += sizes[rb]
            best_norm[ra] = max(best_norm[ra], best_norm[rb])
            anchor[ra] |= anchor[rb]
            for c in conflicts[rb]:
                conflicts[c].discard(rb)
                conflicts[c].add(ra)
            conflicts[ra] |= conflicts[rb]
            conflicts[rb] = set()
            joined = True
        if not joined:
            break
    roots = np.array([_root(parent, g) for g in range(k)], dtype=np.int64)
    return roots[group_of]


def _first_neighbour_links(
    groups: np.ndarray,
    sums: np.ndarray,
    sizes: np.ndarray,
    alive: np.ndarray,
    conflicts: list[set[int]],
    floor: float,
    margin: float,
    is_weak: np.ndarray,
    strong_margin: float | None,
) -> list[tuple[float, int, int]]:
    """``(-gap, a, first neighbour)`` for every group ``a`` of ``groups`` whose link passes: a
    poorly seen ``a`` (``is_weak``) by ``margin``; a well-seen ``a`` only to a poorly seen first
    neighbour, by ``strong_margin``."""
    means = (sums / np.maximum(sizes, 1.0)[:, None]).astype(np.float32)
    dead = ~alive
    links = []
    for start in range(0, len(groups), BLOCK):
        rows = groups[start : start + BLOCK]
        linkage = means[rows] @ means.T  # mean face-to-face cosine to every group
        linkage[:, dead] = -np.inf
        linkage[np.arange(len(rows)), rows] = -np.inf
        rival_cannot = np.full(len(rows), -np.inf)
        for r, a in enumerate(rows.tolist()):
            if conflicts[a]:
                others = np.fromiter(conflicts[a], dtype=np.int64)
                rival_cannot[r] = linkage[r, others].max()
                linkage[r, others] = -np.inf
        first = np.argmax(linkage, axis=1)  # lowest id on ties
        s1 = linkage[np.arange(len(rows)), first]
        linkage[np.arange(len(rows)), first] = -np.inf
        s2 = linkage.max(axis=1)  # the second group it may join...
        s2 = np.where(np.isfinite(s2), s2, rival_cannot)  # ...else a certain stranger
        s2 = np.where(np.isfinite(s2), s2, -1.0)
        weak_row = is_weak[rows]
        need = np.where(weak_row, margin, np.inf if strong_margin is None else strong_margin)
        ok = np.isfinite(s1) & (s1 >= floor) & (s1 - s2 >= need) & (weak_row | is_weak[first])
        for r in np.flatnonzero(ok):
            links.append((-(float(s1[r]) - float(s2[r])), int(rows[r]), int(first[r])))
    return links


def _root(parent: np.ndarray, g: int) -> int:
    while parent[g] != g:
        parent[g] = parent[parent[g]]
        g = int(parent[g])
    return g


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
