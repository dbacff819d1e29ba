"""A person's corrections to identities: merge, rename, not a face, split, undo. Pure.

The machine's identities are the starting point (:class:`People`, built from a bank's faces);
the edits a person made (``OUT/edits.json``, :class:`EditLog`) are replayed on it in order,
each one referring to identities as they were after the edits before it. The app turns the
result into every output file (:mod:`facepipe.app.curate`); here is only what an edit means:

* **merge** ``keep`` + ``ids``: they are one person, who keeps the id ``keep``. Refused when two
  of them share a frame (one frame cannot show a person twice), when their names differ, or
  when a split made them two;
* **rename** ``id`` ``name``: the identity's name (a person's, or from reference photos);
* **not a face** ``id``: the identity leaves every output; a later season run sends what
  matches it nowhere, instead of making it a person again;
* **split** ``id`` ``parts``: those tracks (a run) or episodes (a season) of the identity become
  a new identity ``new_id``; the two are never joined again;
* **undo** ``edit``: that edit no longer counts (the log keeps both, for the record).

An edit that is already in effect (the same merge again, a name it already has) changes nothing
and is not logged again, so running the same command twice is harmless. Faces keep their
**anchor**: the identity they had before any merge. A season run matches new episodes against
each anchor separately (:mod:`facepipe.clustering.series`), so a merge of two looks stays
honoured even when they differ, and a person's looks are not averaged into one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from facepipe.errors import FacepipeError

#: the longest name an identity can be given
MAX_NAME = 120

Op = Literal["merge", "rename", "not_a_face", "split", "undo"]


class EditError(FacepipeError):
    """An edit that cannot be made; the message says why and what to do instead."""


class Edit(BaseModel):
    """One entry of ``edits.json``: what was decided, by whom, when, and the command that did it."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=1)
    op: Op
    #: merge: the identity that stays; rename, not_a_face, split: the identity edited
    id: int | None = None
    #: merge: the identities that join ``id``
    ids: list[int] = Field(default_factory=list)
    name: str | None = None
    #: split: the tracks (a run) or episode names (a season) that become ``new_id``
    tracks: list[int] = Field(default_factory=list)
    episodes: list[str] = Field(default_factory=list)
    new_id: int | None = None
    #: undo: the number of the edit undone
    edit: int | None = None
    #: who decided: "hand" (facepipe edit), "refs" (facepipe name), "report" (an edits file)
    source: str = "hand"
    #: for a name from reference photos: which photo matched, and how well
    evidence: str | None = None
    command: str = ""
    by: str = ""
    at: str = ""

    def describe(self) -> str:
        """The edit in a few words: ``merge 7 into 5``, ``rename 3 "Ross"``."""
        if self.op == "merge":
            return f"merge {', '.join(map(str, self.ids))} into {self.id}"
        if self.op == "rename":
            return f'name {self.id} "{self.name}"' + (" (reference photos)" if self.source == "refs" else "")
        if self.op == "not_a_face":
            return f"{self.id} is not a face"
        if self.op == "split":
            what = (
                f"tracks {', '.join(map(str, self.tracks))}"
                if self.tracks
                else f"episodes {', '.join(self.episodes)}"
            )
            return f"split {what} off {self.id}" + (f" as {self.new_id}" if self.new_id is not None else "")
        return f"undo edit {self.edit}"

    def same_as(self, other: Edit) -> bool:
        """The same decision (whoever made it, whenever)."""
        keys = ("op", "id", "ids", "name", "tracks", "episodes", "edit")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


class EditLog(BaseModel):
    """``edits.json``: every edit of one run's (or season's) outputs, in the order made."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["facepipe-edits"] = "facepipe-edits"
    version: int = 1
    #: the run id (a run's outputs) or series id (a season's) the edits belong to
    target: str
    kind: Literal["run", "series"]
    edits: list[Edit] = Field(default_factory=list)

    def undone(self) -> set[int]:
        return {e.edit for e in self.edits if e.op == "undo" and e.edit is not None}

    def active(self) -> list[Edit]:
        """The edits that count: every edit not undone (undo entries themselves excluded)."""
        gone = self.undone()
        return [e for e in self.edits if e.op != "undo" and e.n not in gone]

    def next_n(self) -> int:
        return max((e.n for e in self.edits), default=0) + 1


@dataclass
class People:
    """Identities and their faces, as the edits see them.

    ``frames[k]`` is face ``k``'s frame key (faces that share one are in one frame: a season
    combines episode and frame), ``parts[k]`` the unit a split moves (its track, or its
    episode), ``anchors[k]`` the identity it had before any merge.
    """

    labels: np.ndarray
    frames: np.ndarray
    parts: np.ndarray
    anchors: np.ndarray
    names: dict[int, str] = field(default_factory=dict)
    #: who named each: "bank" (came with the bank), "hand", "refs"
    named_by: dict[int, str] = field(default_factory=dict)
    #: identities marked not a face
    removed: set[int] = field(default_factory=set)
    #: id -> the id it was merged into
    merged_into: dict[int, int] = field(default_factory=dict)
    #: pairs a split made (low, high): never joined again
    kept_apart: set[tuple[int, int]] = field(default_factory=set)
    #: the lowest id never used (new identities from splits start here)
    next_id: int = 0
    #: each edit that is in effect, by number, for messages ("split apart by edit 4")
    made_by: dict[tuple[str, int, int], int] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        labels: np.ndarray,
        frames: np.ndarray,
        parts: np.ndarray,
        anchors: np.ndarray | None = None,
        names: dict[int, str] | None = None,
        kept_apart: set[tuple[int, int]] | None = None,
        next_id: int = 0,
    ) -> People:
        labels = np.asarray(labels, dtype=np.int64)
        anchors_arr = labels.copy() if anchors is None else np.asarray(anchors, dtype=np.int64)
        top = int(max(labels.max(), anchors_arr.max())) + 1 if len(labels) else 0
        names = {int(k): v for k, v in (names or {}).items() if v}
        return cls(
            labels=labels.copy(),
            frames=np.asarray(frames, dtype=np.int64),
            parts=np.asarray(parts, dtype=np.int64),
            anchors=anchors_arr.copy(),
            names=dict(names),
            named_by={k: "bank" for k in names},
            kept_apart=set(kept_apart or set()),
            next_id=max(int(next_id), top),
        )

    @property
    def ids(self) -> list[int]:
        """The identities that have faces and are not marked not a face."""
        return [i for i in np.unique(self.labels).tolist() if i not in self.removed]

    def resolve(self, identity: int) -> int:
        """Where ``identity`` is now (following merges)."""
        seen = set()
        while identity in self.merged_into and identity not in seen:
            seen.add(identity)
            identity = self.merged_into[identity]
        return identity

    def copy(self) -> People:
        return copy.deepcopy(self)


@dataclass(frozen=True)
class Context:
    """How the outputs name things in messages, and what a split's parts are.

    ``frame_text`` names a frame key (``frame 1234 (0:49.4)``; a season adds the episode);
    ``parts_of`` turns a split edit into keys of :attr:`People.parts` (its tracks, or its
    episodes' indices) and ``part_name`` names such a key (``track 7``, ``episode ep2``).
    """

    frame_text: Callable[[int], str] = lambda key: f"frame {key}"
    parts_of: Callable[[Edit], list[int]] = lambda edit: list(edit.tracks)
    part_name: Callable[[int], str] = lambda key: f"track {key}"


def _check_known(people: People, identity: int) -> int:
    """``identity`` resolved through merges; a one-line error when there is no such identity."""
    now = people.resolve(int(identity))
    if now in people.removed:
        raise EditError(
            f"identity {identity} was marked not a face{_by(people, ('not_a_face', now, 0))}; undo that "
            "edit first (facepipe edit OUT --undo N)"
        )
    if now not in set(people.ids):
        ids = people.ids
        shown = _id_list(ids)
        raise EditError(f"unknown identity {identity}: the identities are {shown} (see identities.csv)")
    return now


def _id_list(ids: list[int]) -> str:
    if not ids:
        return "none"
    if len(ids) <= 12:
        return ", ".join(map(str, ids))
    return f"{', '.join(map(str, ids[:10]))}, ... {ids[-1]} ({len(ids)} in all)"


def _by(people: People, key: tuple[str, int, int]) -> str:
    n = people.made_by.get(key)
    return f" by edit {n}" if n else ""


def shared_frame(people: People, a: int, b: int) -> int | None:
    """A frame key where identities ``a`` and ``b`` both have a face, or None."""
    fa = people.frames[people.labels == a]
    fb = people.frames[people.labels == b]
    both = np.intersect1d(fa, fb)
    return int(both[0]) if len(both) else None


def validate_name(name: str) -> str:
    text = " ".join(str(name).split())
    if not text:
        raise EditError("a name cannot be empty (pass the person's name, quoted if it has spaces)")
    if len(text) > MAX_NAME:
        raise EditError(f"a name is at most {MAX_NAME} characters ({len(text)} given)")
    if any(ord(c) < 32 for c in text):
        raise EditError("a name cannot hold control characters")
    return text


def apply_edit(people: People, edit: Edit, context: Context | None = None) -> bool:
    """Apply ``edit`` to ``people`` in place; False when it was already in effect (nothing
    changed). Raises :class:`EditError` (one line) when it cannot be made."""
    context = context or Context()
    if edit.op == "merge":
        return _merge(people, edit, context.frame_text)
    if edit.op == "rename":
        identity = _check_known(people, _need(edit.id, "rename"))
        name = validate_name(edit.name or "")
        if people.names.get(identity) == name:
            return False
        people.names[identity] = name
        people.named_by[identity] = edit.source
        people.made_by[("rename", identity, 0)] = edit.n
        return True
    if edit.op == "not_a_face":
        target = _need(edit.id, "not a face")
        if people.resolve(target) in people.removed:
            return False
        identity = _check_known(people, target)
        people.removed.add(identity)
        people.names.pop(identity, None)
        people.named_by.pop(identity, None)
        people.made_by[("not_a_face", identity, 0)] = edit.n
        return True
    if edit.op == "split":
        return _split(people, edit, context.parts_of(edit), context.part_name)
    raise EditError(f"edit {edit.n}: an undo is not an edit to apply")


def _need(value: int | None, what: str) -> int:
    if value is None:
        raise EditError(f"{what} needs an identity id")
    return int(value)


def _merge(people: People, edit: Edit, frame_text: Callable[[int], str]) -> bool:
    keep = _check_known(people, _need(edit.id, "merge"))
    others = []
    for identity in edit.ids:
        now = _check_known(people, identity)
        if now != keep and now not in others:
            others.append(now)
    if not others:
        return False  # already one identity
    group = [keep, *others]
    for i, a in enumerate(group):
        for b in group[i + 1 :]:
            pair = (min(a, b), max(a, b))
            if pair in people.kept_apart:
                raise EditError(
                    f"identities {a} and {b} were split apart{_by(people, ('split', *pair))}; undo that "
                    "edit instead (facepipe edit OUT --undo N)"
                )
            frame = shared_frame(people, a, b)
            if frame is not None:
                raise EditError(
                    f"identities {a} and {b} are both in {frame_text(frame)}: one frame cannot show one "
                    "person twice, so they are not merged (if one of them is wrong there, split it first)"
                )
    named = {people.names[i] for i in group if i in people.names}
    if len(named) > 1:
        listed = ", ".join(f'{i} "{people.names[i]}"' for i in group if i in people.names)
        raise EditError(f"identities with different names cannot be merged ({listed}); rename one first")
    name_of = next((i for i in group if i in people.names), None)
    for other in others:
        people.labels[people.labels == other] = keep
        people.merged_into[other] = keep
        people.names.pop(other, None)
        people.made_by[("merge", keep, other)] = edit.n
    if name_of is not None and name_of != keep:
        people.names[keep] = named.pop()
        people.named_by[keep] = people.named_by.pop(name_of, "hand")
    for other in others:
        people.named_by.pop(other, None)
    return True


def _split(people: People, edit: Edit, parts: list[int], part_name: Callable[[int], str]) -> bool:
    """A split whose parts are keys of :attr:`People.parts`; sets ``edit.new_id`` when it was unset."""
    identity = _check_known(people, _need(edit.id, "split"))
    mine = people.labels == identity
    have = sorted(set(people.parts[mine].tolist()))
    wanted = sorted(set(parts))
    if not set(wanted) & set(have):  # the same split again: in effect already?
        for low, high in people.kept_apart:
            other = high if low == identity else low if high == identity else None
            if other is not None and set(people.parts[people.labels == other].tolist()) == set(wanted):
                return False
    missing = [p for p in wanted if p not in have]
    if missing:
        listed = ", ".join(part_name(p) for p in have[:20]) + (" ..." if len(have) > 20 else "")
        raise EditError(
            f"identity {identity} has no {', '.join(part_name(p) for p in missing)}: its parts are {listed}"
        )
    if set(wanted) == set(have):
        raise EditError(
            f"that is all of identity {identity}: a split moves some of its parts to a new identity"
        )
    new_id = people.next_id if edit.new_id is None else int(edit.new_id)
    if new_id in set(np.unique(people.labels).tolist()) or new_id in people.merged_into:
        raise EditError(f"identity {new_id} exists already; cannot split into it")
    move = mine & np.isin(people.parts, wanted)
    people.labels[move] = new_id
    people.anchors[move] = new_id
    people.next_id = max(people.next_id, new_id + 1)
    pair = (min(identity, new_id), max(identity, new_id))
    people.kept_apart.add(pair)
    people.made_by[("split", *pair)] = edit.n
    edit.new_id = new_id
    return True


def replay(people: People, edits: list[Edit], context: Context | None = None) -> People:
    """The identities after ``edits`` (a log's active edits, in order), on a copy. An edit that
    no longer applies raises :class:`EditError` naming it."""
    people = people.copy()
    for edit in edits:
        try:
            apply_edit(people, edit, context)
        except EditError as exc:
            raise EditError(f"edit {edit.n} ({edit.describe()}) no longer applies: {exc}") from None
    return people
