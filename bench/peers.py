"""Candidate identity-clustering methods the accuracy benchmark compares with the product.

Used by ``bench/accuracy.py`` only. Two families:

* **Peers** (:func:`dbscan`, :func:`connected_components`, :func:`average_linkage_faces`,
  :func:`chinese_whispers`, :func:`single_linkage_cannot_link`): offline clusterings of all the
  faces at once, as other face-grouping systems do, ported from the issue #10 research
  (``/work/research/clustering/clusterers.py``). They see embeddings (and, for cannot-link, the
  faces' frames) only: no tracks, no gate.
* The **earlier online candidates** (:class:`Method`, :func:`cluster`): the seed's online
  match-or-add with optional co-occurrence, box-overlap linking and an offline merge; the
  study that made ``--clustering online`` (the previous default) the default. ``accuracy.py``
  no longer scores them (the product's own modes run through the real writer instead); the
  unit tests still hold them to the product's merge pass.

The product's modes themselves (``--clustering seed|online|tracks``) are not here:
``accuracy.py`` runs the library's writer decisions and final pass on the cached chunk records.

Every online method processes faces strictly in ``(frame, face index)`` order, one sampled
frame at a time, with a small state that can be persisted between chunks (see
:meth:`OnlineClusterer.state`). So any of them fits the ordered, exactly-once writer:
applying chunk ``K`` needs only the state left by chunk ``K - 1``.

The building blocks (a :class:`Method` switches them on):

``seed``
    :meth:`facepipe.identity.IdentityBank.match_or_add`, unchanged: cosine to every
    centroid, join the best one at ``>= sim_thresh``, else found a new identity.
``cooccur``
    two faces of one frame are two people: a face may not join an identity that an
    earlier face of the same frame already took. It joins the best *remaining* centroid
    at ``>= sim_thresh``, else founds a new identity.
``track``
    before matching, each face is linked to a face of the previous sampled frame (at most
    ``max_gap`` sampled frames back) whose box overlaps it with IoU ``>= track_iou`` and
    whose embedding is at least ``track_floor`` similar (greedy one-to-one, best IoU
    first). A linked face inherits that face's identity without any threshold, so a
    person turning to profile or blurring inside a shot stays one identity; only the first
    face of a track is matched against the centroids. A hard cut breaks the link because
    the new face either lands elsewhere or fails the similarity floor.
``merge``
    an offline pass after the run (:func:`merge_identities`): average-linkage
    agglomeration of the identities, merging the most similar pair while its linkage is
    ``>= merge``, never merging two identities that appeared together in one frame.

:func:`cluster` runs a method over a whole label set's faces and returns the final
identity of each face. :func:`merge_run` is the merge pass as a writer/finaliser would call
it: from a finished run's persisted faces (frame, identity, embedding) alone.
:meth:`OnlineClusterer.state` / :meth:`OnlineClusterer.restore` are the between-chunk state.

Measured by the earlier ``bench/accuracy.py``: the seed's online step at ``sim_thresh`` 0.40
followed by the merge pass at 0.25 (mean face-to-face cosine, cannot-link on shared frames) was
never worse than the seed at 0.27 on any label set and better on the three photo sets; that
became ``--clustering online``, since replaced as the default by ``--clustering tracks``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from facepipe.identity import IdentityBank, Match
from facepipe.merge import compact, cooccurring_pairs, merge_identities, merge_run  # noqa: F401
from facepipe.tracks import iou_matrix  # noqa: F401  (re-exported for the tests)


@dataclass(frozen=True)
class Method:
    """One clustering configuration. The defaults are the seed's algorithm at the seed's defaults."""

    name: str = "seed"
    sim_thresh: float = 0.27
    refine_limit: int = 30
    cooccur: bool = False
    track: bool = False
    track_iou: float = 0.3
    track_floor: float = 0.2
    #: whether a face placed by a track link also moves its identity's centroid
    track_refine: bool = True
    #: link only to faces at most this many *sampled* frames back (1 = the previous sampled frame)
    max_gap: int = 1
    #: offline merge threshold (None = no merge pass)
    merge: float | None = None
    #: 'centroid': count-weighted mean of centroid cosines; 'faces': mean cosine over all face pairs
    merge_linkage: str = "faces"
    #: the merge pass never joins identities seen in one frame (False only to measure its effect)
    merge_cannot_link: bool = True

    def with_(self, **changes: Any) -> Method:
        return replace(self, **changes)


class ConstrainedBank(IdentityBank):
    """:class:`IdentityBank` plus matching that skips some identities, and joining a given one.

    With nothing excluded :meth:`match_excluding` *is* ``IdentityBank.match_or_add``.
    """

    def match_excluding(
        self, embedding: np.ndarray, sim_thresh: float, refine_limit: int, exclude: Iterable[int] = ()
    ) -> Match:
        exclude = sorted(set(exclude))
        if not exclude:
            return self.match_or_add(embedding, sim_thresh, refine_limit)
        embedding = np.asarray(embedding, dtype=np.float32)
        if len(self) > len(exclude):
            sims = self.centroids @ embedding
            sims[exclude] = -np.inf
            best = int(np.argmax(sims))
            similarity = float(sims[best])
            if similarity >= sim_thresh:
                self._merge(best, embedding, refine_limit)
                return Match(best, similarity)
        return Match(self.add(embedding, embedding, 1, 1), None)

    def join(self, identity: int, embedding: np.ndarray, refine_limit: int, refine: bool = True) -> Match:
        """Put a face in ``identity`` (a track link); the centroid moves only when ``refine``."""
        embedding = np.asarray(embedding, dtype=np.float32)
        similarity = float(self.centroids[identity] @ embedding)
        if refine:
            self._merge(identity, embedding, refine_limit)
        else:
            self.counts[identity] += 1
        return Match(identity, similarity)


@dataclass
class PreviousFrame:
    """The last sampled frame that had faces: what a track link needs from it."""

    frame: int
    boxes: np.ndarray  # (k, 4) float32
    embeddings: np.ndarray  # (k, 512) float32
    identities: list[int]


@dataclass
class OnlineClusterer:
    """A method's online state for one run; feed it frames in order with :meth:`add_frame`."""

    method: Method
    frame_step: int = 1
    bank: ConstrainedBank = field(default_factory=ConstrainedBank)
    previous: PreviousFrame | None = None
    #: identity pairs (low, high) seen together in one frame: the merge pass never joins them
    cooccur: set[tuple[int, int]] = field(default_factory=set)
    #: per identity: sum of its faces' unit embeddings (for the 'faces' merge linkage)
    sums: list[np.ndarray] = field(default_factory=list)
    last_frame: int = -1

    def add_frame(self, frame: int, embeddings: np.ndarray, boxes: np.ndarray) -> list[Match]:
        """Place every face of one sampled frame (faces in detector order); returns one Match each."""
        frame = int(frame)
        if frame <= self.last_frame:
            raise ValueError(f"frame {frame} after frame {self.last_frame}: frames must come in order")
        self.last_frame = frame
        method = self.method
        embeddings = np.asarray(embeddings, dtype=np.float32).reshape(-1, self.bank.dim)
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        links = self._links(frame, embeddings, boxes) if method.track else {}
        taken = {identity for identity in links.values()} if method.cooccur else set()
        matches: list[Match] = []
        for i, embedding in enumerate(embeddings):
            if i in links:
                match = self.bank.join(links[i], embedding, method.refine_limit, method.track_refine)
            else:
                match = self.bank.match_excluding(embedding, method.sim_thresh, method.refine_limit, taken)
            if method.cooccur:
                taken.add(match.identity)
            matches.append(match)
            if match.identity == len(self.sums):
                self.sums.append(np.zeros(self.bank.dim, dtype=np.float64))
            self.sums[match.identity] += embedding
        ids = sorted({m.identity for m in matches})
        self.cooccur.update((a, b) for k, a in enumerate(ids) for b in ids[k + 1 :])
        if len(matches):
            self.previous = PreviousFrame(
                frame, boxes.copy(), embeddings.copy(), [m.identity for m in matches]
            )
        return matches

    def _links(self, frame: int, embeddings: np.ndarray, boxes: np.ndarray) -> dict[int, int]:
        """Face index -> identity inherited from the previous sampled frame (greedy one-to-one)."""
        prev = self.previous
        method = self.method
        if prev is None or not len(boxes) or frame - prev.frame > method.max_gap * self.frame_step:
            return {}
        ious = iou_matrix(boxes, prev.boxes)
        sims = embeddings @ prev.embeddings.T
        ok = (ious >= method.track_iou) & (sims >= method.track_floor)
        candidates = sorted(
            ((-ious[i, j], i, j) for i, j in zip(*np.nonzero(ok), strict=True)),
            key=lambda c: (c[0], c[1], c[2]),
        )
        links: dict[int, int] = {}
        used: set[int] = set()
        for _, i, j in candidates:
            if i in links or j in used:
                continue
            links[int(i)] = prev.identities[int(j)]
            used.add(int(j))
        return links

    def state(self) -> dict[str, Any]:
        """Everything that must persist between chunks besides the bank's identities.

        ``last_frame``; ``previous`` (the last sampled frame with faces: its frame index,
        boxes, embeddings and identities; only ``track`` reads it); ``cooccur`` (identity pairs
        seen in one frame; only the merge pass reads it); ``sums`` (per identity, the sum of its
        faces' embeddings; only the 'faces' merge linkage reads it). :meth:`restore` inverts it.
        """
        prev = self.previous
        return {
            "last_frame": self.last_frame,
            "previous": None
            if prev is None
            else {
                "frame": prev.frame,
                "boxes": prev.boxes.copy(),
                "embeddings": prev.embeddings.copy(),
                "identities": list(prev.identities),
            },
            "cooccur": sorted(self.cooccur),
            "sums": np.array(self.sums, dtype=np.float64).reshape(len(self.sums), self.bank.dim),
        }

    @classmethod
    def restore(
        cls, method: Method, frame_step: int, bank: IdentityBank, state: dict[str, Any]
    ) -> OnlineClusterer:
        """A clusterer that continues where the one that gave ``bank`` and ``state`` stopped."""
        restored = ConstrainedBank(bank.dim)
        for i in range(len(bank)):
            restored.add(bank.embeddings[i], bank.centroids[i], bank.refine_counts[i], bank.counts[i])
        prev = state.get("previous")
        return cls(
            method,
            frame_step,
            restored,
            None
            if prev is None
            else PreviousFrame(
                int(prev["frame"]),
                np.asarray(prev["boxes"], dtype=np.float32).reshape(-1, 4),
                np.asarray(prev["embeddings"], dtype=np.float32).reshape(-1, bank.dim),
                [int(i) for i in prev["identities"]],
            ),
            {(int(a), int(b)) for a, b in state.get("cooccur", ())},
            [np.array(row, dtype=np.float64) for row in state.get("sums", ())],
            int(state.get("last_frame", -1)),
        )

    def final_identities(self) -> np.ndarray:
        """Old identity -> final identity (compact, founding order) after the method's merge pass."""
        n = len(self.bank)
        if self.method.merge is None or n < 2:
            return np.arange(n)
        if self.method.merge_linkage == "faces":
            vectors = np.array(self.sums)
        else:
            counts = np.array(self.bank.counts, dtype=np.float64)
            vectors = self.bank.centroids.astype(np.float64) * counts[:, None]
        cannot = self.cooccur if self.method.merge_cannot_link else set()
        return compact(merge_identities(vectors, np.array(self.bank.counts), cannot, self.method.merge))


def cluster(
    frames: Sequence[int],
    embeddings: np.ndarray,
    boxes: np.ndarray,
    method: Method,
    frame_step: int = 1,
) -> np.ndarray:
    """Final identity of every face; faces must be in ``(frame, face index)`` order."""
    frames = np.asarray(frames)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32)
    if len(frames) and np.any(np.diff(frames) < 0):
        raise ValueError("faces must be sorted by frame")
    clusterer = OnlineClusterer(method, frame_step)
    online = np.empty(len(frames), dtype=np.int64)
    start = 0
    while start < len(frames):
        stop = start
        while stop < len(frames) and frames[stop] == frames[start]:
            stop += 1
        matches = clusterer.add_frame(int(frames[start]), embeddings[start:stop], boxes[start:stop])
        online[start:stop] = [m.identity for m in matches]
        start = stop
    return clusterer.final_identities()[online] if len(online) else online


# ---------------------------------------------------------------- peers (issue #10's table)
#
# Each takes the faces of a run in writer order (frame, then detector index) and returns a label
# per face, numbered 0..K-1 by first appearance. Deterministic.


def first_order(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..K-1 in order of first appearance."""
    labels = np.asarray(labels)
    if not len(labels):
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)].astype(np.int64)


def dbscan(embeddings: np.ndarray, eps: float = 0.5, min_samples: int = 3) -> np.ndarray:
    """DBSCAN on cosine distance, as Immich groups faces (distance 0.5, at least 3 faces). A point
    counts itself; border points join the first core cluster that reaches them (index order);
    noise points are singletons (each its own identity)."""
    e = np.asarray(embeddings, dtype=np.float32)
    n = len(e)
    if n == 0:
        return np.zeros(0, np.int64)
    near = (1.0 - e @ e.T) <= eps + 1e-6
    core = near.sum(1) >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    c = 0
    for i in range(n):
        if not core[i] or labels[i] >= 0:
            continue
        stack = [i]
        labels[i] = c
        while stack:
            p = stack.pop()
            for q in np.flatnonzero(near[p]):
                if labels[q] < 0:
                    labels[q] = c
                    if core[q]:
                        stack.append(q)
        c += 1
    for i in np.flatnonzero(labels < 0):
        labels[i] = c
        c += 1
    return first_order(labels)


def connected_components(embeddings: np.ndarray, sim_min: float = 0.4) -> np.ndarray:
    """Components of the graph with an edge where cosine >= ``sim_min`` (DBSCAN with min 1 point,
    = single linkage without constraints)."""
    return dbscan(embeddings, 1.0 - sim_min, 1)


def average_linkage_faces(embeddings: np.ndarray, distance: float = 0.8) -> np.ndarray:
    """Plain average linkage (UPGMA) over faces, cut at cosine distance ``distance`` (0.8 = mean
    cosine >= 0.2), no constraints. SciPy's (installed with insightface); the research checked it
    equals its own dense agglomeration."""
    from scipy.cluster.hierarchy import fcluster, linkage

    e = np.asarray(embeddings, dtype=np.float64)
    if len(e) < 2:
        return np.zeros(len(e), dtype=np.int64)
    return first_order(
        fcluster(linkage(e, method="average", metric="cosine"), t=distance, criterion="distance")
    )


def chinese_whispers(
    embeddings: np.ndarray, sim_min: float = 0.4, iterations: int = 100, seed: int = 0
) -> np.ndarray:
    """dlib's Chinese whispers on unweighted edges at cosine >= ``sim_min`` (a seeded shuffle of the
    faces per round, at most ``iterations`` rounds, stops when nothing changes)."""
    e = np.asarray(embeddings, dtype=np.float32)
    n = len(e)
    adj = (e @ e.T) >= sim_min
    np.fill_diagonal(adj, False)
    neighbours = [np.flatnonzero(adj[i]) for i in range(n)]
    labels = np.arange(n)
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = False
        for i in rng.permutation(n):
            if not len(neighbours[i]):
                continue
            best = int(np.argmax(np.bincount(labels[neighbours[i]])))
            if best != labels[i]:
                labels[i] = best
                changed = True
        if not changed:
            break
    return first_order(labels)


def single_linkage_cannot_link(
    frames: np.ndarray, embeddings: np.ndarray, sim_min: float = 0.4
) -> np.ndarray:
    """Single linkage over faces down to cosine ``sim_min``, never joining two groups that have faces
    in one frame. Kruskal's order (pairs by cosine, highest first; a pair whose groups share a frame
    is skipped for good, as a shared frame never goes away), which makes the same merges as the
    research's dense agglomeration (best allowed pair first) up to ties."""
    e = np.asarray(embeddings, dtype=np.float32)
    frames = np.asarray(frames)
    n = len(e)
    parent = np.arange(n)
    members_frames = [{int(f)} for f in frames]

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    sims = e @ e.T
    i_idx, j_idx = np.nonzero(np.triu(sims >= sim_min, 1))
    order = np.lexsort((j_idx, i_idx, -sims[i_idx, j_idx]))
    for k in order:
        a, b = find(int(i_idx[k])), find(int(j_idx[k]))
        if a == b or not members_frames[a].isdisjoint(members_frames[b]):
            continue
        a, b = min(a, b), max(a, b)
        parent[b] = a
        members_frames[a] |= members_frames[b]
    return first_order(np.array([find(i) for i in range(n)]))
