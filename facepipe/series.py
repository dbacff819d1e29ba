"""A season in one bank: one identity per person across episodes, with stable ids.

After every episode of ``facepipe run EP1 EP2 ...`` has its own final identities, the
series pass joins them: each episode identity is a group of faces, and groups from
different episodes that are one person are joined by the same average linkage as within
an episode (:func:`facepipe.linkage.average_linkage`, at the run's ``--merge-thresh``; the
faces of two identities that share a frame never join). The result depends only on the
videos, their order and the starting bank, never on worker counts or timing.

**Stable ids** (``--bank FILE.npz``): the people of an earlier series bank take part as
*anchored* groups. An episode identity that matches one of them joins it and takes its
id; one that matches nobody is a new person and gets the next free id after the bank's.
Two bank people are never joined and never renumbered: when an episode shows them to be
one person (a group would have joined both), the pair is reported in ``summary.json``
(``conflicts``) for a human to decide. The output bank is a superset of the input: every
old person, face and episode, plus this run's.

Ids cannot stay stable when the bank itself changes underneath them: a bank written by a
different model, or edited by hand, is refused when its arrays do not fit together.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from facepipe.errors import FacepipeError
from facepipe.final import FinalIdentities
from facepipe.identity import DIM
from facepipe.linkage import average_linkage, group_sums
from facepipe.merge import cooccurring_pairs

#: the arrays a series bank holds (see the README, "A season"); :meth:`SeriesBank.load` checks them
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

    @classmethod
    def load(cls, path: Path) -> SeriesBank:
        """Read and check a series bank; anything else is a one-line :class:`FacepipeError`."""
        path = Path(path)
        if not path.is_file():
            raise FacepipeError(f"bank file not found: {path} (pass the series/bank.npz of an earlier run)")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [key for key in SERIES_KEYS if key not in data.files]
                if missing:
                    what = (
                        "an episode's bank.npz, not a series bank"
                        if "run_id" in data.files
                        else "not a series bank"
                    )
                    raise FacepipeError(
                        f"{path} is {what}: it lacks {', '.join(missing[:3])} "
                        "(pass the series/bank.npz that 'facepipe run EP1 EP2 ...' wrote)"
                    )
                bank = cls(**{key: data[key] for key in SERIES_KEYS})
        except FacepipeError:
            raise
        except Exception as exc:  # noqa: BLE001 - zip, npy and pickle refusals all mean "not a bank"
            raise FacepipeError(f"{path} is not a readable .npz bank ({type(exc).__name__}: {exc})") from None
        bank.check(path)
        return bank

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
        if problems:
            raise FacepipeError(f"{path} is not a usable series bank: {problems[0]}")

    def save(self, path: Path) -> Path:
        """Write atomically (a reader never sees half a bank); no pickles."""
        partial = path.with_name(path.name + ".partial.npz")
        arrays = {key: getattr(self, key) for key in SERIES_KEYS}
        arrays["episodes"] = np.asarray(self.episodes, dtype=np.str_)
        arrays["videos"] = np.asarray(self.videos, dtype=np.str_)
        np.savez_compressed(partial, **arrays)
        partial.replace(path)
        return path


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


def series_pass(episodes: list[EpisodeResult], prior: SeriesBank | None, thresh: float) -> SeriesResult:
    """Join the episodes' identities (and an earlier bank's people) into series identities."""
    prior = prior or SeriesBank.empty()
    done = [ep for ep in episodes if ep.final is not None]
    n_prior = len(prior.identity_ids)
    # groups: the prior bank's people (anchored), then every identity of every finished episode
    row_of_id = np.zeros(int(prior.identity_ids.max()) + 1 if n_prior else 0, dtype=np.int64)
    row_of_id[prior.identity_ids] = np.arange(n_prior)
    prior_rows = row_of_id[prior.face_identities]  # each bank face's group
    sums = [group_sums(prior_rows, prior.face_embeddings, n_prior)]
    weights = [np.maximum(np.bincount(prior_rows, minlength=n_prior), 1)]
    # the bank's people who share a frame of one of its episodes stay apart, as they were
    cannot = cooccurring_pairs((prior.face_episodes * (1 << 32) + prior.face_frames).tolist(), prior_rows)
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
        offsets.append(offset)
        offset += k
    vectors = np.concatenate(sums) if sums else np.zeros((0, DIM))
    sizes = np.concatenate(weights).astype(np.float64) if weights else np.zeros(0)
    anchored = np.zeros(len(vectors), dtype=bool)
    anchored[:n_prior] = True
    if thresh > 0 and len(vectors) > 1:
        parent = average_linkage(vectors, sizes, cannot, thresh, anchored=anchored)
    else:
        parent = np.arange(len(vectors))
    conflicts = _conflicts(vectors, sizes, n_prior, cannot, thresh, done, offsets)
    series_id = _series_ids(parent, prior.identity_ids, first_seen)
    result = _merge_into_bank(prior, done, offsets, series_id)
    for ep, name in zip(done, result.episodes[len(prior.episodes) :].tolist(), strict=True):
        ep.series_name = name
    return SeriesResult(
        bank=result,
        episode_index=list(range(len(prior.episodes), len(prior.episodes) + len(done))),
        known={int(i) for i in prior.identity_ids},
        conflicts=[
            Conflict(int(prior.identity_ids[a]), int(prior.identity_ids[b]), episode, identity, la, lb)
            for a, b, episode, identity, la, lb in conflicts
        ],
    )


def _conflicts(
    vectors: np.ndarray,
    sizes: np.ndarray,
    n_prior: int,
    cannot: set[tuple[int, int]],
    thresh: float,
    done: list[EpisodeResult],
    offsets: list[int],
) -> list[tuple[int, int, str, int, float, float]]:
    """Each episode identity that matches two bank people who never share a frame (the two
    best such matches); the linkages are between the identity and each person alone."""
    if not n_prior or len(vectors) == n_prior or thresh <= 0:
        return []
    anchors, units = vectors[:n_prior], vectors[n_prior:]
    linkage = (units @ anchors.T) / np.outer(sizes[n_prior:], sizes[:n_prior])
    found = []
    for u in np.flatnonzero((linkage >= thresh).sum(axis=1) >= 2):
        best = [int(a) for a in np.argsort(-linkage[u], kind="stable") if linkage[u, a] >= thresh]
        pairs = [
            (a, b) for i, a in enumerate(best) for b in best[i + 1 :] if (min(a, b), max(a, b)) not in cannot
        ]
        if not pairs:
            continue
        a, b = pairs[0]
        number = int(np.searchsorted(offsets, u + n_prior, side="right")) - 1
        episode = done[number]
        found.append(
            (
                min(a, b),
                max(a, b),
                episode.series_name or episode.name,
                int(u + n_prior - offsets[number]),
                round(float(linkage[u, min(a, b)]), 4),
                round(float(linkage[u, max(a, b)]), 4),
            )
        )
    return found


def _series_ids(parent: np.ndarray, prior_ids: np.ndarray, first_seen: list[tuple[int, int]]) -> np.ndarray:
    """A series id per group: the bank id of the anchor it joined, or a new id after the bank's,
    numbered by first appearance (episode order, then frame)."""
    n_prior = len(prior_ids)
    ids = np.full(len(parent), -1, dtype=np.int64)
    ids[:n_prior] = prior_ids
    root_id: dict[int, int] = {int(parent[i]): int(prior_ids[i]) for i in range(n_prior)}
    next_id = int(prior_ids.max()) + 1 if n_prior else 0
    order = sorted(range(n_prior, len(parent)), key=lambda g: first_seen[g - n_prior])
    for group in order:
        root = int(parent[group])
        if root not in root_id:
            root_id[root] = next_id
            next_id += 1
    for group in range(n_prior, len(parent)):
        ids[group] = root_id[int(parent[group])]
    return ids


def _merge_into_bank(
    prior: SeriesBank, done: list[EpisodeResult], offsets: list[int], series_id: np.ndarray
) -> SeriesBank:
    """The prior bank plus this run's episodes and faces, relabelled to series ids."""
    faces = [prior.face_embeddings]
    identities, episodes, frames, bboxes, local = (
        [prior.face_identities],
        [prior.face_episodes],
        [prior.face_frames],
        [prior.face_bboxes],
        [prior.face_episode_identities],
    )
    first_episode = len(prior.episodes)
    for number, (ep, offset) in enumerate(zip(done, offsets, strict=True)):
        final = ep.final
        assert final is not None
        labels = np.array([face.identity for face in final.faces], dtype=np.int64)
        faces.append(final.face_embeddings)
        identities.append(series_id[offset + labels] if len(labels) else labels)
        episodes.append(np.full(len(labels), first_episode + number, dtype=np.int64))
        frames.append(np.array([face.frame for face in final.faces], dtype=np.int64))
        bboxes.append(np.array([face.bbox for face in final.faces], dtype=np.float32).reshape(-1, 4))
        local.append(labels)
    face_identities = np.concatenate(identities).astype(np.int64)
    face_episodes = np.concatenate(episodes).astype(np.int64)
    face_frames = np.concatenate(frames).astype(np.int64)
    embeddings = np.concatenate(faces).astype(np.float32).reshape(-1, DIM)
    ids = np.unique(np.concatenate([prior.identity_ids, face_identities])).astype(np.int64)
    row = np.searchsorted(ids, face_identities)
    n, e = len(ids), first_episode + len(done)
    sums = group_sums(row, embeddings, n)
    centroids = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    episode_counts = np.zeros((n, e), dtype=np.int64)
    np.add.at(episode_counts, (row, face_episodes), 1)
    first = np.full((n, e), np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full((n, e), -1, dtype=np.int64)
    np.minimum.at(first, (row, face_episodes), face_frames)
    np.maximum.at(last, (row, face_episodes), face_frames)
    first[last < 0] = -1
    return SeriesBank(
        identity_ids=ids,
        centroids=centroids,
        counts=episode_counts.sum(axis=1),
        episode_counts=episode_counts,
        first_frame=first,
        last_frame=last,
        episodes=np.array(_unique_names(prior.episodes.tolist(), [ep.name for ep in done]), dtype=np.str_),
        videos=np.array([*prior.videos.tolist(), *(ep.video for ep in done)], dtype=np.str_),
        fps=np.array([*prior.fps.tolist(), *(ep.fps for ep in done)], dtype=np.float64),
        frame_steps=np.array([*prior.frame_steps.tolist(), *(ep.frame_step for ep in done)], dtype=np.int64),
        face_embeddings=embeddings,
        face_identities=face_identities,
        face_episodes=face_episodes,
        face_frames=face_frames,
        face_bboxes=np.concatenate(bboxes).astype(np.float32).reshape(-1, 4),
        face_episode_identities=np.concatenate(local).astype(np.int64),
    )


def _unique_names(known: list[str], new: list[str]) -> list[str]:
    """The bank's episode names, then the new ones, each made unique ("ep1", "ep1-2", ...)."""
    names = list(known)
    for name in new:
        candidate, n = name, 2
        while candidate in names:
            candidate, n = f"{name}-{n}", n + 1
        names.append(candidate)
    return names


# -- outputs -----------------------------------------------------------------------------


def write_series(
    out: Path, result: SeriesResult, episodes: list[EpisodeResult], params: dict[str, Any]
) -> dict[str, Any]:
    """``bank.npz``, ``faces.jsonl``, ``summary.json`` and ``identities.csv`` in ``out``; returns
    the summary (the report is built from these files)."""
    out.mkdir(parents=True, exist_ok=True)
    bank = result.bank
    result.bank.save(out / "bank.npz")
    screen = _screen_seconds(bank)
    new_eps = set(result.episode_index)
    with open(out / "faces.jsonl", "wb") as fh:
        for k in np.flatnonzero(np.isin(bank.face_episodes, list(new_eps))):
            e = int(bank.face_episodes[k])
            frame = int(bank.face_frames[k])
            line = {
                "video": str(bank.videos[e]),
                "episode": str(bank.episodes[e]),
                "frame": frame,
                "time_s": round(frame / float(bank.fps[e]), 3),
                "bbox": [round(float(v), 2) for v in bank.face_bboxes[k]],
                "identity": int(bank.face_identities[k]),
                "episode_identity": int(bank.face_episode_identities[k]),
            }
            fh.write(orjson.dumps(line) + b"\n")
    seen_now = {int(i) for i in np.unique(bank.face_identities[np.isin(bank.face_episodes, list(new_eps))])}
    summary = {
        "episodes": [
            {
                "name": ep.series_name or ep.name,
                "video": ep.video,
                "status": "failed" if ep.final is None else ("incomplete" if ep.problem else "done"),
                "problem": ep.problem,
                "faces": 0 if ep.final is None else len(ep.final.faces),
                "identities": 0 if ep.final is None else len(ep.final),
            }
            for ep in episodes
        ],
        "all_episodes": bank.episodes.tolist(),
        "identities": len(bank.identity_ids),
        "identities_in_these_episodes": len(seen_now),
        "known": sorted(seen_now & result.known),
        "new": sorted(seen_now - result.known),
        "conflicts": [
            {
                "bank_ids": [c.a, c.b],
                "episode": c.episode,
                "episode_identity": c.identity,
                "linkages": [c.linkage_a, c.linkage_b],
                "note": c.note,
            }
            for c in result.conflicts
        ],
        "counts": {str(int(i)): int(c) for i, c in zip(bank.identity_ids, bank.counts, strict=True)},
        "episode_counts": {
            str(int(i)): {str(name): int(c) for name, c in zip(bank.episodes, row, strict=True) if c}
            for i, row in zip(bank.identity_ids, bank.episode_counts, strict=True)
        },
        "screen_seconds": {
            str(int(i)): {str(name): s for name, s in zip(bank.episodes, row, strict=True) if s}
            for i, row in zip(bank.identity_ids, screen.tolist(), strict=True)
        },
        "missing": [ep.name for ep in episodes if ep.final is None],
        "params": params,
    }
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    _write_csv(out / "identities.csv", bank, screen)
    return summary


def _screen_seconds(bank: SeriesBank) -> np.ndarray:
    """(N, E) screen time: faces x frame step / fps of each episode."""
    per_face = bank.frame_steps.astype(np.float64) / np.maximum(bank.fps, 1e-9)
    return np.round(bank.episode_counts * per_face[None, :], 1)


def _write_csv(path: Path, bank: SeriesBank, screen: np.ndarray) -> None:
    """One row per person, a screen-time column (seconds) per episode: for spreadsheets."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["identity", "faces", "screen_s", "episodes", *(f"{name} (s)" for name in bank.episodes)]
        )
        order = np.lexsort((bank.identity_ids, -screen.sum(axis=1)))
        for r in order:
            writer.writerow(
                [
                    int(bank.identity_ids[r]),
                    int(bank.counts[r]),
                    round(float(screen[r].sum()), 1),
                    int((bank.episode_counts[r] > 0).sum()),
                    *(f"{s:g}" for s in screen[r]),
                ]
            )


def format_series(summary: dict[str, Any], out: Path) -> str:
    """The human summary of the series pass."""
    n_eps = len(summary["episodes"])
    lines = [
        f"series: {n_eps} episode(s) now, {len(summary['all_episodes'])} in the bank; "
        f"{summary['identities']} people in the bank, {summary['identities_in_these_episodes']} in "
        f"these episodes ({len(summary['known'])} known, {len(summary['new'])} new)",
    ]
    for ep in summary["episodes"]:
        state = {
            "done": "",
            "incomplete": f"  INCOMPLETE: {ep['problem']}",
            "failed": f"  FAILED: {ep['problem']}",
        }
        lines.append(
            f"  {ep['name']}: {ep['faces']} faces, {ep['identities']} identities{state[ep['status']]}"
        )
    for conflict in summary["conflicts"]:
        lines.append(
            f"  NOTE: {conflict['note']} (linkage {conflict['linkage']}); ids kept apart, decide by hand"
        )
    lines.append(f"  series: {out}/report.html, identities.csv, bank.npz, faces.jsonl, summary.json")
    return "\n".join(lines)
