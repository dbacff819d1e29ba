"""A season in one bank: one identity per person across episodes, with stable ids.

After every episode of ``facepipe run EP1 EP2 ...`` has its own final identities, the
series pass joins them: each episode identity is a group of faces, and groups from
different episodes that are one person are joined by the same rules as within an episode:
average linkage (:func:`facepipe.clustering.linkage.average_linkage`, at the run's
``--merge-thresh``), then poorly seen identities join the person their neighbourhood names
(:func:`facepipe.clustering.people.neighbourhood_levels`); the faces of two identities that
share a frame never join. The result depends only on the videos, their order and the starting
bank, never on worker counts or timing.

**Stable ids** (``--bank FILE.npz``): the people of an earlier series bank take part as
*anchored* groups. An episode identity that matches one of them joins it and takes its
id; one that matches nobody is a new person and gets the next free id after the bank's.
Two bank people are never joined and never renumbered: when an episode shows them to be
one person (a group would have joined both), the pair is reported in ``summary.json``
(``conflicts``) for a human to decide. The output bank is a superset of the input: every
old person, face and episode, plus this run's.

Ids cannot stay stable when the bank itself changes underneath them: a bank written by a
different model, or edited by hand, is refused when its arrays do not fit together
(:meth:`SeriesBank.check`; the file is read and written by :mod:`facepipe.app.banks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facepipe.clustering.final import FinalIdentities
from facepipe.clustering.linkage import average_linkage, compact, cooccurring_pairs, group_sums
from facepipe.clustering.people import neighbourhood_levels
from facepipe.errors import FacepipeError
from facepipe.records import DIM, RunParams
from facepipe.settings import Clustering

#: the arrays a series bank holds (see the README, "A season"); reading a bank file checks them
SERIES_KEYS = (
    "identity_ids",
    "centroids",
    "counts",
    "episode_counts",
    "first_frame",
    "last_frame",
    "episodes",
    "videos",
    "fps",
    "frame_steps",
    "face_embeddings",
    "face_identities",
    "face_episodes",
    "face_frames",
    "face_bboxes",
    "face_episode_identities",
)
#: arrays a series bank may hold (written by this version; an older bank gets their defaults)
OPTIONAL_SERIES_KEYS = (
    "names",
    "face_anchors",
    "face_shots",
    "rejected_embeddings",
    "rejected_groups",
    "kept_apart",
    "frame_counts",
    "next_id",
    "model",
    "series_id",
)


@dataclass
class EpisodeResult:
    """One episode's finished result, as the series pass needs it (``final`` None: it failed)."""

    name: str
    video: str
    fps: float
    frame_step: int
    final: FinalIdentities | None
    #: why the episode is missing or incomplete (lost frame ranges, an error), for the summary
    problem: str | None = None
    #: its name in the series bank (``name``, made unique among the bank's episodes)
    series_name: str | None = None
    #: the video's frame count (0: unknown), for screen-time shares
    frame_count: int = 0


@dataclass
class SeriesBank:
    """Identities ``identity_ids`` (N) across episodes (E), and every face (F) behind them."""

    identity_ids: np.ndarray  # (N,) int64
    centroids: np.ndarray  # (N, DIM) float32, unit rows
    counts: np.ndarray  # (N,) int64
    episode_counts: np.ndarray  # (N, E) int64
    first_frame: np.ndarray  # (N, E) int64, -1: not in that episode
    last_frame: np.ndarray  # (N, E) int64
    episodes: np.ndarray  # (E,) str
    videos: np.ndarray  # (E,) str
    fps: np.ndarray  # (E,) float64
    frame_steps: np.ndarray  # (E,) int64
    face_embeddings: np.ndarray  # (F, DIM) float32
    face_identities: np.ndarray  # (F,) int64: series id
    face_episodes: np.ndarray  # (F,) int64: index into episodes
    face_frames: np.ndarray  # (F,) int64
    face_bboxes: np.ndarray  # (F, 4) float32
    face_episode_identities: np.ndarray  # (F,) int64: the identity within its episode
    # -- optional arrays (:data:`OPTIONAL_SERIES_KEYS`; a bank without them gets these defaults) --
    #: (N,) each person's name ("" unnamed)
    names: np.ndarray = field(default_factory=lambda: np.zeros(0, np.str_))
    #: (F,) the group each face is matched as (its person before any merge: see
    #: :mod:`facepipe.clustering.curation`); defaults to ``face_identities``
    face_anchors: np.ndarray | None = None
    #: (F,) each face's shot within its episode (-1 unknown)
    face_shots: np.ndarray | None = None
    #: (R, DIM), (R,): faces of identities marked not a face, and which such identity each was
    rejected_embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, DIM), np.float32))
    rejected_groups: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: (K, 2) pairs of people a person split apart: never joined, never reported as one
    kept_apart: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    #: (E,) each episode's frame count (0 unknown): the duration that screen-time shares divide by
    frame_counts: np.ndarray | None = None
    #: the lowest id never used (0-d); -1: one more than the largest id or anchor
    next_id: int = -1
    #: the recogniser that made the embeddings (file name and sha256 prefix; "" unknown)
    model: str = ""
    #: the id of the season run that wrote the bank ("" unknown)
    series_id: str = ""

    def __post_init__(self) -> None:
        n, f, e = len(self.identity_ids), len(self.face_identities), len(self.episodes)
        if len(self.names) != n:
            self.names = np.full(n, "", dtype="<U1") if not len(self.names) else self.names
        if self.face_anchors is None:
            self.face_anchors = np.asarray(self.face_identities, dtype=np.int64).copy()
        if self.face_shots is None:
            self.face_shots = np.full(f, -1, dtype=np.int64)
        if self.frame_counts is None:
            self.frame_counts = np.zeros(e, dtype=np.int64)
        if self.next_id < 0:
            top = [self.identity_ids, self.face_anchors, self.rejected_groups]
            self.next_id = max((int(a.max()) + 1 for a in top if len(a)), default=0)

    @classmethod
    def of_faces(
        cls,
        identity_ids: np.ndarray,
        *,
        episodes: np.ndarray,
        face_embeddings: np.ndarray,
        face_identities: np.ndarray,
        face_episodes: np.ndarray,
        face_frames: np.ndarray,
        **fields: Any,
    ) -> SeriesBank:
        """A bank whose per-person tables (counts, counts per episode, first and last frames,
        centroids) are computed from its faces, ``fields`` holding the rest: how a season's
        pass, a run's bank read as a season and an edit each build one, so that the tables
        always agree with the faces behind them."""
        counts, episode_counts, first, last, centroids = person_tables(
            identity_ids, face_identities, face_episodes, face_frames, face_embeddings, len(episodes)
        )
        return cls(
            identity_ids=identity_ids,
            centroids=centroids,
            counts=counts,
            episode_counts=episode_counts,
            first_frame=first,
            last_frame=last,
            episodes=episodes,
            face_embeddings=face_embeddings,
            face_identities=face_identities,
            face_episodes=face_episodes,
            face_frames=face_frames,
            **fields,
        )

    def name_of(self, identity: int) -> str:
        rows = np.flatnonzero(self.identity_ids == identity)
        return str(self.names[rows[0]]) if len(rows) and len(self.names) > rows[0] else ""

    @classmethod
    def empty(cls) -> SeriesBank:
        return cls(
            identity_ids=np.zeros(0, np.int64),
            centroids=np.zeros((0, DIM), np.float32),
            counts=np.zeros(0, np.int64),
            episode_counts=np.zeros((0, 0), np.int64),
            first_frame=np.zeros((0, 0), np.int64),
            last_frame=np.zeros((0, 0), np.int64),
            episodes=np.zeros(0, np.str_),
            videos=np.zeros(0, np.str_),
            fps=np.zeros(0, np.float64),
            frame_steps=np.zeros(0, np.int64),
            face_embeddings=np.zeros((0, DIM), np.float32),
            face_identities=np.zeros(0, np.int64),
            face_episodes=np.zeros(0, np.int64),
            face_frames=np.zeros(0, np.int64),
            face_bboxes=np.zeros((0, 4), np.float32),
            face_episode_identities=np.zeros(0, np.int64),
        )

    def check(self, path: Path) -> None:
        """The arrays must fit together: sizes, the embedding dimension, ids that faces use."""
        n, e, f = len(self.identity_ids), len(self.episodes), len(self.face_identities)
        problems = []
        if self.centroids.shape != (n, DIM) or self.face_embeddings.shape != (f, DIM):
            width = self.centroids.shape[1] if self.centroids.ndim == 2 else "?"
            problems.append(f"embeddings are {width}-dimensional, this model's are {DIM}")
        for name in ("counts",):
            if getattr(self, name).shape != (n,):
                problems.append(f"{name} does not have one entry per identity")
        for name in ("episode_counts", "first_frame", "last_frame"):
            if getattr(self, name).shape != (n, e):
                problems.append(f"{name} is not identities x episodes")
        for name in ("videos", "fps", "frame_steps"):
            if getattr(self, name).shape != (e,):
                problems.append(f"{name} does not have one entry per episode")
        for name in ("face_episodes", "face_frames", "face_episode_identities"):
            if getattr(self, name).shape != (f,):
                problems.append(f"{name} does not have one entry per face")
        if not problems and f and not np.isin(self.face_identities, self.identity_ids).all():
            problems.append("faces name identities the bank does not have")
        if not problems and f and (self.face_episodes.min() < 0 or self.face_episodes.max() >= e):
            problems.append("faces name episodes the bank does not have")
        if len(np.unique(self.identity_ids)) != n:
            problems.append("identity ids repeat")
        if self.names.shape != (n,):
            problems.append("names does not have one entry per identity")
        for name in ("face_anchors", "face_shots"):
            if np.shape(getattr(self, name)) != (f,):
                problems.append(f"{name} does not have one entry per face")
        if np.shape(self.frame_counts) != (e,):
            problems.append("frame_counts does not have one entry per episode")
        r = len(self.rejected_groups)
        if self.rejected_embeddings.shape != (r, DIM) or self.kept_apart.shape[1:] != (2,):
            problems.append("the not-a-face arrays do not fit together")
        if problems:
            raise FacepipeError(f"{path} is not a usable series bank: {problems[0]}")


@dataclass(frozen=True)
class Conflict:
    """Evidence that bank people ``a`` and ``b`` may be one person: an identity of ``episode``
    matches both (average linkage ``linkage_a``, ``linkage_b``, each at or above the threshold)."""

    a: int
    b: int
    episode: str
    identity: int
    linkage_a: float
    linkage_b: float

    @property
    def note(self) -> str:
        return (
            f"bank identities {self.a} and {self.b} look like one person: {self.episode} identity "
            f"{self.identity} matches both ({self.linkage_a:.3f}, {self.linkage_b:.3f}); kept apart, "
            "decide by hand"
        )


@dataclass
class SeriesResult:
    bank: SeriesBank
    #: this run's episodes: their index in ``bank.episodes``
    episode_index: list[int]
    #: bank ids the run started with (people already known)
    known: set[int]
    #: pairs of bank people an episode identity matches both of
    conflicts: list[Conflict] = field(default_factory=list)
    #: episode identities that matched an identity a person marked not a face: left out
    #: (episode name, its identity there, its faces, the not-a-face identity it matched)
    removed: list[tuple[str, int, int, int]] = field(default_factory=list)


def series_thresh(params: RunParams) -> float:
    """The linkage a season's episodes are joined at: the run's own rule, ``--merge-thresh`` (the
    seed's online ``--sim-thresh``, as it has no final pass)."""
    return params.sim_thresh if params.clustering == Clustering.seed else params.merge_thresh


def series_pass(episodes: list[EpisodeResult], prior: SeriesBank | None, thresh: float) -> SeriesResult:
    """Join the episodes' identities (and an earlier bank's people) into series identities.

    The bank takes part as anchored groups, one per **anchor** (a person before any merge a
    person made; usually the person itself), plus one per identity marked not a face. An
    episode identity that joins an anchor takes its person's id; one that joins a not-a-face
    group is left out of the outputs (and its faces join that group, so it keeps learning).
    """
    prior = prior or SeriesBank.empty()
    done = [ep for ep in episodes if ep.final is not None]
    assert prior.face_anchors is not None
    # groups: the bank's anchors, then its not-a-face identities (all anchored), then every
    # identity of every finished episode
    anchor_keys, prior_rows = np.unique(prior.face_anchors, return_inverse=True)
    n_anchor = len(anchor_keys)
    person_of = np.zeros(n_anchor, dtype=np.int64)  # anchor row -> its person's id
    person_of[prior_rows] = prior.face_identities
    reject_keys, reject_rows = np.unique(prior.rejected_groups, return_inverse=True)
    n_prior = n_anchor + len(reject_keys)
    sums = [
        group_sums(prior_rows, prior.face_embeddings, n_anchor),
        group_sums(reject_rows, prior.rejected_embeddings, len(reject_keys)),
    ]
    weights = [
        np.maximum(np.bincount(prior_rows, minlength=n_anchor), 1),
        np.maximum(np.bincount(reject_rows, minlength=len(reject_keys)), 1),
    ]
    # the bank's anchors that share a frame of one of its episodes stay apart, as they were
    cannot = cooccurring_pairs((prior.face_episodes * (1 << 32) + prior.face_frames).tolist(), prior_rows)
    # how clearly each group was seen: its best face norm (a bank's people: well seen)
    seen = [np.full(n_prior, np.inf)]
    offsets, first_seen = [], []
    offset = n_prior
    for number, ep in enumerate(done):
        final = ep.final
        assert final is not None
        labels = np.array([face.identity for face in final.faces], dtype=np.int64)
        k = len(final)
        sums.append(group_sums(labels, final.face_embeddings, k))
        weights.append(np.maximum(np.bincount(labels, minlength=k), 1))
        frames = [face.frame for face in final.faces]
        cannot |= {(a + offset, b + offset) for a, b in cooccurring_pairs(frames, labels)}
        first = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, labels, np.array(frames, dtype=np.int64))
        first_seen += [(number, int(first[i])) for i in range(k)]
        norms = np.array([np.inf if face.emb_norm is None else face.emb_norm for face in final.faces])
        best = np.full(k, -np.inf)
        np.maximum.at(best, labels, norms)
        seen.append(best)
        offsets.append(offset)
        offset += k
    vectors = np.concatenate(sums) if sums else np.zeros((0, DIM))
    sizes = np.concatenate(weights).astype(np.float64) if weights else np.zeros(0)
    anchored = np.zeros(len(vectors), dtype=bool)
    anchored[:n_prior] = True
    if thresh > 0 and len(vectors) > 1:
        parent = average_linkage(vectors, sizes, cannot, thresh, anchored=anchored)
        # poorly seen episode identities join the person their neighbourhood names, as in an episode
        best_norm = np.concatenate(seen)
        parent = neighbourhood_levels(compact(parent), vectors, sizes, best_norm, cannot, anchored=anchored)
    else:
        parent = np.arange(len(vectors))
    # each group's person (a series id), or a not-a-face key (as -1 - key)
    owner = np.concatenate([person_of, -1 - reject_keys]).astype(np.int64)
    apart = {(int(a), int(b)) for a, b in prior.kept_apart.tolist()}
    conflicts = _conflicts(vectors, sizes, owner, n_prior, cannot, thresh, done, offsets, apart)
    series_id, anchor_of, next_id = _series_ids(parent, owner, anchor_keys, first_seen, prior.next_id)
    result, removed = _merge_into_bank(prior, done, offsets, series_id, anchor_of, next_id)
    for ep, name in zip(done, result.episodes[len(prior.episodes) :].tolist(), strict=True):
        ep.series_name = name
    return SeriesResult(
        bank=result,
        episode_index=list(range(len(prior.episodes), len(prior.episodes) + len(done))),
        known={int(i) for i in prior.identity_ids},
        conflicts=[
            Conflict(a, b, episode, identity, la, lb) for a, b, episode, identity, la, lb in conflicts
        ],
        removed=removed,
    )


def _conflicts(
    vectors: np.ndarray,
    sizes: np.ndarray,
    owner: np.ndarray,
    n_prior: int,
    cannot: set[tuple[int, int]],
    thresh: float,
    done: list[EpisodeResult],
    offsets: list[int],
    apart: set[tuple[int, int]],
) -> list[tuple[int, int, str, int, float, float]]:
    """Each episode identity that matches two bank people who never share a frame (the two
    best such matches); the linkages are between the identity and each anchor alone. Two
    anchors of one person, not-a-face groups and people a person split apart are no conflict."""
    if not n_prior or len(vectors) == n_prior or thresh <= 0:
        return []
    anchors, units = vectors[:n_prior], vectors[n_prior:]
    linkage = (units @ anchors.T) / np.outer(sizes[n_prior:], sizes[:n_prior])
    found = []
    for u in np.flatnonzero((linkage >= thresh).sum(axis=1) >= 2):
        best = [
            int(a)
            for a in np.argsort(-linkage[u], kind="stable")
            if linkage[u, a] >= thresh and owner[a] >= 0
        ]
        pairs = [
            (a, b)
            for i, a in enumerate(best)
            for b in best[i + 1 :]
            if (min(a, b), max(a, b)) not in cannot
            and owner[a] != owner[b]
            and (min(owner[a], owner[b]), max(owner[a], owner[b])) not in apart
        ]
        if not pairs:
            continue
        a, b = pairs[0]
        if owner[a] > owner[b]:
            a, b = b, a
        number = int(np.searchsorted(offsets, u + n_prior, side="right")) - 1
        episode = done[number]
        found.append(
            (
                int(owner[a]),
                int(owner[b]),
                episode.series_name or episode.name,
                int(u + n_prior - offsets[number]),
                round(float(linkage[u, a]), 4),
                round(float(linkage[u, b]), 4),
            )
        )
    return found


def _series_ids(
    parent: np.ndarray,
    owner: np.ndarray,
    anchor_keys: np.ndarray,
    first_seen: list[tuple[int, int]],
    next_id: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """For each group: its series id (the person of the anchor it joined, a new id after the
    bank's numbered by first appearance (episode order, then frame), or ``-1 - key`` for a
    not-a-face group), its anchor (the bank anchor it joined, or its new id) and the next free id."""
    n_prior = len(owner)
    ids = np.full(len(parent), -1, dtype=np.int64)
    anchors = np.full(len(parent), -1, dtype=np.int64)
    ids[:n_prior] = owner
    anchors[: len(anchor_keys)] = anchor_keys
    anchors[len(anchor_keys) : n_prior] = owner[len(anchor_keys) :]
    root_id: dict[int, tuple[int, int]] = {
        int(parent[i]): (int(owner[i]), int(anchors[i])) for i in range(n_prior)
    }
    order = sorted(range(n_prior, len(parent)), key=lambda g: first_seen[g - n_prior])
    for group in order:
        root = int(parent[group])
        if root not in root_id:
            root_id[root] = (next_id, next_id)
            next_id += 1
    for group in range(n_prior, len(parent)):
        ids[group], anchors[group] = root_id[int(parent[group])]
    return ids, anchors, next_id


def _merge_into_bank(
    prior: SeriesBank,
    done: list[EpisodeResult],
    offsets: list[int],
    series_id: np.ndarray,
    anchor_of: np.ndarray,
    next_id: int,
) -> tuple[SeriesBank, list[tuple[str, int, int, int]]]:
    """The prior bank plus this run's episodes and faces, relabelled to series ids; faces of
    identities that joined a not-a-face group go to the bank's rejected faces instead."""
    assert prior.face_anchors is not None and prior.face_shots is not None and prior.frame_counts is not None
    faces = [prior.face_embeddings]
    identities, episodes, frames, bboxes, local, anchors, shots = (
        [prior.face_identities],
        [prior.face_episodes],
        [prior.face_frames],
        [prior.face_bboxes],
        [prior.face_episode_identities],
        [prior.face_anchors],
        [prior.face_shots],
    )
    rejected, rejected_groups = [prior.rejected_embeddings], [prior.rejected_groups]
    removed: list[tuple[str, int, int, int]] = []
    first_episode = len(prior.episodes)
    names = _unique_names(prior.episodes.tolist(), [ep.name for ep in done])
    for number, (ep, offset) in enumerate(zip(done, offsets, strict=True)):
        final = ep.final
        assert final is not None
        labels = np.array([face.identity for face in final.faces], dtype=np.int64)
        ids = series_id[offset + labels] if len(labels) else labels
        keep = ids >= 0
        for identity in np.unique(labels[~keep]).tolist():
            key = -1 - int(series_id[offset + identity])
            removed.append(
                (names[first_episode + number], int(identity), int((labels == identity).sum()), key)
            )
        rejected.append(np.asarray(final.face_embeddings, np.float32)[~keep].reshape(-1, DIM))
        rejected_groups.append(-1 - ids[~keep])
        faces.append(np.asarray(final.face_embeddings, np.float32)[keep].reshape(-1, DIM))
        identities.append(ids[keep])
        anchors.append(anchor_of[offset + labels][keep] if len(labels) else labels)
        episodes.append(np.full(int(keep.sum()), first_episode + number, dtype=np.int64))
        frames.append(np.array([face.frame for face in final.faces], dtype=np.int64)[keep])
        bboxes.append(np.array([face.bbox for face in final.faces], dtype=np.float32).reshape(-1, 4)[keep])
        shots.append(np.array([-1 if f.shot is None else f.shot for f in final.faces], dtype=np.int64)[keep])
        local.append(labels[keep])
    face_identities = np.concatenate(identities).astype(np.int64)
    face_episodes = np.concatenate(episodes).astype(np.int64)
    face_frames = np.concatenate(frames).astype(np.int64)
    embeddings = np.concatenate(faces).astype(np.float32).reshape(-1, DIM)
    ids = np.unique(np.concatenate([prior.identity_ids, face_identities])).astype(np.int64)
    names_of = {int(i): str(n) for i, n in zip(prior.identity_ids, prior.names, strict=True)}
    n = len(ids)
    return (
        SeriesBank.of_faces(
            ids,
            episodes=np.array(names, dtype=np.str_),
            videos=np.array([*prior.videos.tolist(), *(ep.video for ep in done)], dtype=np.str_),
            fps=np.array([*prior.fps.tolist(), *(ep.fps for ep in done)], dtype=np.float64),
            frame_steps=np.array(
                [*prior.frame_steps.tolist(), *(ep.frame_step for ep in done)], dtype=np.int64
            ),
            face_embeddings=embeddings,
            face_identities=face_identities,
            face_episodes=face_episodes,
            face_frames=face_frames,
            face_bboxes=np.concatenate(bboxes).astype(np.float32).reshape(-1, 4),
            face_episode_identities=np.concatenate(local).astype(np.int64),
            names=np.array([names_of.get(int(i), "") for i in ids], dtype=np.str_).reshape(n),
            face_anchors=np.concatenate(anchors).astype(np.int64),
            face_shots=np.concatenate(shots).astype(np.int64),
            rejected_embeddings=np.concatenate(rejected).astype(np.float32).reshape(-1, DIM),
            rejected_groups=np.concatenate(rejected_groups).astype(np.int64),
            kept_apart=prior.kept_apart.astype(np.int64).reshape(-1, 2),
            frame_counts=np.array(
                [*prior.frame_counts.tolist(), *(ep.frame_count for ep in done)], dtype=np.int64
            ),
            next_id=next_id,
            model=prior.model,
            series_id=prior.series_id,
        ),
        removed,
    )


def person_tables(
    ids: np.ndarray,
    face_identities: np.ndarray,
    face_episodes: np.ndarray,
    face_frames: np.ndarray,
    embeddings: np.ndarray,
    n_episodes: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per person (rows in ``ids`` order): counts, counts per episode, first and last frame per
    episode (-1 where absent) and the centroid (the normalised mean of its faces)."""
    n = len(ids)
    row = np.searchsorted(ids, face_identities)
    sums = group_sums(row, embeddings, n)
    centroids = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    episode_counts = np.zeros((n, n_episodes), dtype=np.int64)
    np.add.at(episode_counts, (row, face_episodes), 1)
    first = np.full((n, n_episodes), np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full((n, n_episodes), -1, dtype=np.int64)
    np.minimum.at(first, (row, face_episodes), face_frames)
    np.maximum.at(last, (row, face_episodes), face_frames)
    first[last < 0] = -1
    return episode_counts.sum(axis=1), episode_counts, first, last, centroids.reshape(n, DIM)


def _unique_names(known: list[str], new: list[str]) -> list[str]:
    """The bank's episode names, then the new ones, each made unique ("ep1", "ep1-2", ...)."""
    names = list(known)
    for name in new:
        candidate, n = name, 2
        while candidate in names:
            candidate, n = f"{name}-{n}", n + 1
        names.append(candidate)
    return names
