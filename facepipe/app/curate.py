"""``facepipe edit``: a person's corrections, kept in ``OUT/edits.json`` and applied to every output.

Works on a run's output folder and on a season's ``OUT/series/`` alike. The first edit keeps
the outputs as the run wrote them in ``OUT/original/``; every edit after that (and every undo)
replays the log's edits on those originals (:mod:`facepipe.clustering.curation`) and writes
``summary.json``, ``faces.jsonl``, ``identities.csv``, ``bank.npz`` and ``report.html`` again,
each atomically. So the outputs always equal "the run, then the edits in effect", an edit
that is already in effect changes nothing, and an undo is exact. Every check runs before
anything is written: a refused edit leaves every file as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import shlex
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import ValidationError

from facepipe.app.banks import read_run_bank, read_series_bank
from facepipe.app.files import save_npz, write_atomically
from facepipe.app.outputs import IDENTITIES_CSV, write_identities_csv
from facepipe.app.report.build import build_report, read_json_outputs
from facepipe.app.report.formatting import fmt_time
from facepipe.app.report.series import build_series_report
from facepipe.app.series_outputs import series_summary, these_episodes, write_series_files
from facepipe.app.summary import Summary
from facepipe.clustering.curation import Context, Edit, EditError, EditLog, People, apply_edit, replay
from facepipe.clustering.screen import screen_times
from facepipe.clustering.series import SeriesBank
from facepipe.errors import FacepipeError
from facepipe.records import DIM

EDITS_FILE = "edits.json"
ORIGINAL_DIR = "original"
#: the files ``original/`` keeps (the report and identities.csv are rebuilt from them)
ORIGINAL_FILES = ("summary.json", "faces.jsonl", "bank.npz")


@dataclass
class Target:
    """The outputs being edited: a run's folder or a season's ``series/`` folder."""

    folder: Path
    kind: Literal["run", "series"]
    #: the run id, or the season's series id
    id: str

    @property
    def source(self) -> Path:
        """Where the machine's outputs are: ``original/`` once edited, else the folder itself."""
        return self.folder / ORIGINAL_DIR if original_of(self) == self.id else self.folder


def original_of(target: Target) -> str | None:
    """The run (or series) id of the outputs kept in ``original/``; None when there are none.
    Outputs of another run there (a new run written into an edited folder) are not these."""
    original = target.folder / ORIGINAL_DIR
    if not (original / "bank.npz").is_file() or not (original / "summary.json").is_file():
        return None
    try:
        summary = orjson.loads((original / "summary.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return ""
    return str(summary.get("series_id") or summary.get("run_id") or "") if isinstance(summary, dict) else ""


@dataclass
class Outputs:
    """The machine's outputs of a target, and the identities the edits start from."""

    target: Target
    summary: Any  # Summary (run) or dict (series)
    bank: Any  # dict of arrays (run) or SeriesBank (series)
    people: People
    context: Context
    #: embeddings of every face, in bank order (centroids and names are computed from them)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, DIM), np.float32))


def open_target(path: str | Path) -> Target:
    """A run's output folder, a season's ``series/`` folder, or a season's folder (its ``series/``);
    anything else is a one-line error."""
    folder = Path(path)
    if not (folder / "summary.json").is_file() and (folder / "series" / "summary.json").is_file():
        folder = folder / "series"
    if not folder.is_dir() or not (folder / "summary.json").is_file() or not (folder / "bank.npz").is_file():
        what = "is not a folder" if not folder.is_dir() else "has no summary.json and bank.npz"
        raise FacepipeError(
            f"{path} {what} (pass the --out folder of a finished 'facepipe run', or a season's OUT/series)"
        )
    summary = _read_json(folder / "summary.json")
    if "all_episodes" in summary:
        series_id = str(summary.get("series_id") or "")
        if not series_id:
            raise FacepipeError(
                f"{folder} was written by an older facepipe without a series id: "
                "run the season again to edit it"
            )
        return Target(folder, "series", series_id)
    return Target(folder, "run", str(summary.get("run_id") or ""))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise FacepipeError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FacepipeError(f"{path} is not a facepipe summary")
    return data


@contextlib.contextmanager
def locked(target: Target) -> Iterator[None]:
    """One edit of a folder at a time (a second waits for the first)."""
    with open(target.folder / ".edits.lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- the log ------------------------------------------------------------------------------------


def read_log(target: Target, path: Path | None = None) -> EditLog:
    """``edits.json`` of the target (empty when there is none); refused when it belongs to other
    outputs."""
    path = path or target.folder / EDITS_FILE
    if not path.is_file():
        if path != target.folder / EDITS_FILE:
            raise FacepipeError(f"edits file not found: {path}")
        return EditLog(target=target.id, kind=target.kind)
    try:
        log = EditLog.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise FacepipeError(f"{path} is not a facepipe edits file ({first})") from None
    if log.target != target.id or log.kind != target.kind:
        raise FacepipeError(
            f"{path} holds the edits of {log.kind} {log.target}, but {target.folder} holds {target.kind} "
            f"{target.id}: edits apply only to the outputs they were made on (move that file away "
            "to start editing these)"
        )
    return log


def other_edits_warning(out: Path, new_id: str) -> str | None:
    """A note when ``out`` holds edits of earlier outputs than the ones just written there."""
    path = out / EDITS_FILE
    if not path.is_file():
        return None
    try:
        log = EditLog.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return f"{path} is not a readable edits file; left as it is"
    if log.target == new_id:
        return None
    return (
        f"{path} holds edits of earlier outputs ({log.kind} {log.target}), not of these: they were not "
        f"applied here; move it and {out / ORIGINAL_DIR} away before editing these outputs"
    )


# -- reading the machine's outputs ---------------------------------------------------------------


def read_outputs(target: Target) -> Outputs:
    """The machine's outputs of ``target`` (``original/`` once edited) as :class:`People`."""
    source = target.source
    if target.kind == "run":
        summary = Summary.read(source / "summary.json")
        try:
            bank = read_run_bank(source / "bank.npz")
        except (OSError, ValueError) as exc:
            raise FacepipeError(f"{source / 'bank.npz'} is not a readable run bank ({exc})") from None
        fps = float(bank["fps"]) or summary.fps
        people = People.of(
            bank["face_identities"],
            bank["face_frames"],
            bank["face_tracks"],
            bank["face_anchors"],
            {int(i): str(n) for i, n in zip(bank["identity_ids"], bank["names"], strict=True) if n},
            {(int(a), int(b)) for a, b in bank["kept_apart"].tolist()},
            int(bank["next_id"]),
        )
        has_tracks = bool(len(bank["face_tracks"])) and bool((bank["face_tracks"] >= 0).all())

        def parts_of(edit: Edit) -> list[int]:
            if edit.episodes:
                raise EditError("a run's identities split by --tracks (--episodes is for a season's series/)")
            if not has_tracks:
                raise EditError(
                    "this run has no face tracks to split by (it ran with --clustering "
                    f"{summary.params.get('clustering')}); run it again with --clustering tracks"
                )
            return list(edit.tracks)

        context = Context(
            frame_text=lambda key: f"frame {key} (at {fmt_time(key / fps)})",
            parts_of=parts_of,
            part_name=lambda key: f"track {key}",
        )
        return Outputs(
            target, summary, bank, people, context, np.asarray(bank["face_embeddings"], np.float32)
        )
    summary = _read_json(source / "summary.json")
    bank = read_series_bank(source / "bank.npz")
    episodes = bank.episodes.tolist()
    people = People.of(
        bank.face_identities,
        bank.face_episodes * (1 << 32) + bank.face_frames,
        bank.face_episodes,
        bank.face_anchors,
        {int(i): str(n) for i, n in zip(bank.identity_ids, bank.names, strict=True) if n},
        {(int(a), int(b)) for a, b in bank.kept_apart.tolist()},
        bank.next_id,
    )

    def series_parts(edit: Edit) -> list[int]:
        if edit.tracks:
            raise EditError("a season's people split by --episodes (--tracks is for one run's outputs)")
        unknown = [name for name in edit.episodes if name not in episodes]
        if unknown:
            raise EditError(
                f"no episode {', '.join(unknown)} in this season (its episodes: {', '.join(episodes)})"
            )
        return [episodes.index(name) for name in edit.episodes]

    def frame_text(key: int) -> str:
        e, frame = key >> 32, key & ((1 << 32) - 1)
        return f"{episodes[e]} frame {frame} (at {fmt_time(frame / float(bank.fps[e]))})"

    context = Context(
        frame_text=frame_text, parts_of=series_parts, part_name=lambda k: f"episode {episodes[k]}"
    )
    return Outputs(target, summary, bank, people, context, bank.face_embeddings)


# -- writing every output ------------------------------------------------------------------------


def snapshot(target: Target) -> None:
    """Keep the machine's outputs in ``original/`` before the first edit changes them."""
    original = target.folder / ORIGINAL_DIR
    kept = original_of(target)
    if kept == target.id:
        return
    if kept is not None or original.exists():  # another run's, left behind: keep it, by its id
        original.rename(target.folder / f"{ORIGINAL_DIR}-{kept or 'unknown'}-{now_text().replace(':', '')}")
    partial = target.folder / (ORIGINAL_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for name in ORIGINAL_FILES:
        shutil.copy2(target.folder / name, partial / name)
    shutil.rmtree(original, ignore_errors=True)
    partial.rename(original)


def centroids_of(outputs: Outputs, people: People, ids: list[int]) -> np.ndarray:
    """Each identity's centroid: the normalised mean of its faces."""
    rows = np.searchsorted(np.asarray(ids), people.labels[np.isin(people.labels, ids)])
    sums = np.zeros((len(ids), DIM))
    np.add.at(sums, rows, outputs.embeddings[np.isin(people.labels, ids)].astype(np.float64))
    return (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def render(outputs: Outputs, people: People, log: EditLog) -> None:
    """Every output of the target from the machine's outputs and the edits in effect."""
    described = [f"{e.n}: {e.describe()}" for e in log.active()]
    if outputs.target.kind == "run":
        _render_run(outputs, people, described)
    else:
        _render_series(outputs, people, described)


def _rejected(
    bank_rejected: np.ndarray, bank_groups: np.ndarray, outputs: Outputs, people: People, gone: np.ndarray
):
    embeddings = np.concatenate(
        [np.asarray(bank_rejected, np.float32).reshape(-1, DIM), outputs.embeddings[gone]]
    )
    groups = np.concatenate([np.asarray(bank_groups, np.int64), people.labels[gone]])
    return embeddings, groups


def _not_faces(people: People) -> dict[str, int]:
    return {str(i): int((people.labels == i).sum()) for i in sorted(people.removed)}


def _render_run(outputs: Outputs, people: People, described: list[str]) -> None:
    folder, summary, bank = outputs.target.folder, outputs.summary, outputs.bank
    _, faces = read_json_outputs(outputs.target.source)
    if len(faces) != len(people.labels):
        raise FacepipeError(
            f"{outputs.target.source} is damaged: faces.jsonl has {len(faces)} faces, "
            f"bank.npz {len(people.labels)}"
        )
    keep = ~np.isin(people.labels, sorted(people.removed))
    labels = people.labels[keep]
    ids = sorted(set(labels.tolist()))
    min_faces = int(summary.params.get("min_faces") or 1)
    counts = {i: int((labels == i).sum()) for i in ids}
    extras = [i for i in ids if counts[i] < min_faces]
    # an identity whose faces are exactly the machine's keeps the machine's centroid (an online
    # identity's is the writer's, not the mean); a changed one gets the mean of its faces
    original = np.asarray(bank["face_identities"])
    old_rows = {int(i): r for r, i in enumerate(bank["identity_ids"].tolist())}
    means = centroids_of(outputs, people, ids)
    centroids = np.zeros((len(ids), DIM), np.float32)
    refine = np.zeros(len(ids), np.int64)
    for r, i in enumerate(ids):
        mine = people.labels == i
        same = i in old_rows and np.array_equal(mine, original == i)
        centroids[r] = bank["centroids"][old_rows[i]] if same else means[r]
        refine[r] = bank["refine_counts"][old_rows[i]] if same else counts[i]
    frames = np.asarray(bank["face_frames"])[keep]
    first = np.array([int(frames[labels == i].min()) for i in ids], np.int64)
    last = np.array([int(frames[labels == i].max()) for i in ids], np.int64)
    rejected, groups = _rejected(bank["rejected_embeddings"], bank["rejected_groups"], outputs, people, ~keep)
    arrays = {key: value for key, value in bank.items()}
    arrays.update(
        {
            "identity_ids": np.array(ids, np.int64),
            "centroids": centroids.reshape(len(ids), DIM),
            "counts": np.array([counts[i] for i in ids], np.int64),
            "refine_counts": refine,
            "extras": np.array([i in extras for i in ids], bool).reshape(len(ids)),
            "first_frame": first,
            "last_frame": last,
            "face_embeddings": outputs.embeddings[keep].reshape(-1, DIM),
            "face_frames": frames,
            "face_identities": labels,
            "face_bboxes": np.asarray(bank["face_bboxes"])[keep].reshape(-1, 4),
            "face_tracks": np.asarray(bank["face_tracks"])[keep],
            "face_shots": np.asarray(bank["face_shots"])[keep],
            "names": np.array([people.names.get(i, "") for i in ids], dtype=np.str_).reshape(len(ids)),
            "face_anchors": people.anchors[keep],
            "rejected_embeddings": rejected,
            "rejected_groups": groups,
            "kept_apart": np.array(sorted(people.kept_apart), np.int64).reshape(-1, 2),
            "next_id": np.array(people.next_id, np.int64),
        }
    )
    for key in ("fps", "frame_step", "frame_count", "next_id"):
        arrays[key] = np.asarray(arrays[key])
    for key in ("run_id", "model", "video"):
        arrays[key] = np.array(str(arrays[key]), dtype=np.str_)
    lines = []
    for k in np.flatnonzero(keep):
        line = dict(faces[k])
        identity = int(people.labels[k])
        line["identity"] = identity
        line.pop("name", None)
        if identity in people.names:
            line["name"] = people.names[identity]
        if min_faces > 1:
            line["extra"] = identity in extras
        lines.append(orjson.dumps(line) + b"\n")
    shots = np.asarray(bank["face_shots"])[keep]
    times = screen_times(
        labels,
        frames,
        None if (shots < 0).any() else shots.tolist(),
        float(bank["fps"]),
        int(bank["frame_step"]),
        int(summary.params.get("frame_count") or bank["frame_count"] or 0),
    )
    new = summary.model_copy(
        update={
            "faces": int(keep.sum()),
            "identities": len(ids),
            "people": len(ids) - len(extras),
            "extras": extras,
            "counts": {str(i): counts[i] for i in ids},
            "screen_time": {str(i): times[i] for i in ids},
            "names": {str(i): people.names[i] for i in ids if i in people.names},
            "not_faces": _not_faces(people),
            "faces_removed": int((~keep).sum()),
            "edits": described,
        }
    )
    save_npz(folder / "bank.npz", arrays)
    write_atomically(folder / "faces.jsonl", b"".join(lines))
    new.write(folder / "summary.json")
    write_identities_csv(folder / IDENTITIES_CSV, new)
    build_report(folder)


def _render_series(outputs: Outputs, people: People, described: list[str]) -> None:
    folder, summary, bank = outputs.target.folder, outputs.summary, outputs.bank
    assert isinstance(bank, SeriesBank) and bank.face_shots is not None
    keep = ~np.isin(people.labels, sorted(people.removed))
    labels = people.labels[keep]
    ids = np.array(sorted(set(labels.tolist())), np.int64)
    rejected, groups = _rejected(bank.rejected_embeddings, bank.rejected_groups, outputs, people, ~keep)
    edited = SeriesBank.of_faces(
        ids,
        episodes=bank.episodes,
        videos=bank.videos,
        fps=bank.fps,
        frame_steps=bank.frame_steps,
        face_embeddings=outputs.embeddings[keep].reshape(-1, DIM),
        face_identities=labels,
        face_episodes=bank.face_episodes[keep],
        face_frames=bank.face_frames[keep],
        face_bboxes=bank.face_bboxes[keep].reshape(-1, 4),
        face_episode_identities=bank.face_episode_identities[keep],
        names=np.array([people.names.get(int(i), "") for i in ids], dtype=np.str_).reshape(len(ids)),
        face_anchors=people.anchors[keep],
        face_shots=bank.face_shots[keep],
        rejected_embeddings=rejected,
        rejected_groups=groups,
        kept_apart=np.array(sorted(people.kept_apart), np.int64).reshape(-1, 2),
        frame_counts=bank.frame_counts,
        next_id=people.next_id,
        model=bank.model,
        series_id=bank.series_id,
    )
    these = these_episodes(bank, summary)
    prior_ids = summary.get("prior_ids")
    if prior_ids is None:
        prior_ids = sorted(set(summary.get("known") or []))
    resolved = sorted({people.resolve(int(i)) for i in prior_ids} - people.removed)
    new = series_summary(
        edited,
        summary,
        these,
        resolved,
        not_faces=_not_faces(people),
        faces_removed=int((~keep).sum()),
        edits=described,
    )
    new["prior_ids"] = prior_ids
    write_series_files(folder, edited, new, these)
    build_series_report(folder)


# -- the commands --------------------------------------------------------------------------------


def now_text() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a container: the edit is still recorded
        return "?"


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed (``facepipe edit OUT --merge 5 7``), for the log's "why"."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["facepipe", *args])


def commit(outputs: Outputs, log: EditLog, new: list[Edit]) -> People:
    """Append ``new`` to the log, replay, write every output and then the log; returns the result.
    Nothing is written when the replay fails."""
    log = log.model_copy(update={"edits": [*log.edits, *new]})
    people = replay(outputs.people, log.active(), outputs.context)
    target = outputs.target
    snapshot(target)
    render(outputs, people, log)
    write_atomically(target.folder / EDITS_FILE, log.model_dump_json(indent=2).encode())
    return people


def reapply(out: Path, run_id: str) -> bool:
    """Outputs of ``run_id`` were just written again in ``out``: apply its edits again (True), or
    leave edits of another run alone with a warning (False)."""
    note = other_edits_warning(out, run_id)
    if note:
        print(f"facepipe: {note}", file=sys.stderr)
        return False
    target = Target(out, "run", run_id)
    with locked(target):
        shutil.rmtree(out / ORIGINAL_DIR, ignore_errors=True)  # the freshly written outputs are the machine's
        log = read_log(target)
        outputs = read_outputs(target)
        commit(outputs, log, [])
    print(f"facepipe: {len(log.active())} edit(s) of {out / EDITS_FILE} applied again", file=sys.stderr)
    return True


@dataclass
class Request:
    """What ``facepipe edit`` was asked to do, in command-line order."""

    ops: list[Edit] = field(default_factory=list)
    undo: list[int] = field(default_factory=list)
    apply: Path | None = None


def edit_command(path: str, request: Request, argv: list[str] | None = None) -> int:
    """``facepipe edit OUT ...``: apply the edits (or list them with no edit given)."""
    target = open_target(path)
    with locked(target):
        log = read_log(target)
        if not request.ops and not request.undo and request.apply is None:
            print(describe_state(target, log))
            return 0
        outputs = read_outputs(target)
        people = replay(outputs.people, log.active(), outputs.context)
        command, who, when = command_line(argv), user_name(), now_text()
        new: list[Edit] = []
        notes: list[str] = []
        n = log.next_n()
        undone = log.undone()
        for number in request.undo:
            edit = next((e for e in log.edits if e.n == number), None)
            if edit is None or edit.op == "undo":
                numbers = ", ".join(str(e.n) for e in log.active()) or "none"
                raise FacepipeError(
                    f"no edit {number} to undo (edits in effect: {numbers}; see 'facepipe edit {path}')"
                )
            if number in undone or any(e.edit == number for e in new):
                notes.append(f"edit {number} is undone already")
                continue
            new.append(Edit(n=n, op="undo", edit=number, command=command, by=who, at=when))
            n += 1
        if new:  # later edits must still apply without the undone ones
            trial = log.model_copy(update={"edits": [*log.edits, *new]})
            try:
                people = replay(outputs.people, trial.active(), outputs.context)
            except EditError as exc:
                raise FacepipeError(f"cannot undo: {exc} (undo that edit too, or first)") from None
        incoming = list(request.ops)
        if request.apply is not None:
            incoming += [
                e.model_copy(update={"source": "file" if e.source == "hand" else e.source})
                for e in read_log(target, request.apply).active()
            ]
        for edit in incoming:
            stamp = {"n": n, "command": edit.command or command, "by": edit.by or who, "at": edit.at or when}
            edit = edit.model_copy(update=stamp)
            if edit.op == "split" and request.apply is None:
                edit.new_id = None
            if apply_edit(people, edit, outputs.context):
                new.append(edit)
                n += 1
            else:
                notes.append(f"already so: {edit.describe()}")
        for note in notes:
            print(f"facepipe: {note}", file=sys.stderr)
        if not new:
            print(f"facepipe: nothing to change in {target.folder}")
            return 0
        people = commit(outputs, log, new)
    for edit in new:
        print(f"edit {edit.n}: {edit.describe()}")
    print(
        f"{len(people.ids)} identities now; outputs in {target.folder} rewritten "
        f"({EDITS_FILE} has every edit)"
    )
    return 0


def describe_state(target: Target, log: EditLog) -> str:
    """``facepipe edit OUT`` alone: the edits made so far and how to undo one."""
    lines = [f"{target.kind} {target.id} in {target.folder}"]
    if not log.edits:
        lines.append("  no edits yet (see 'facepipe edit --help')")
    undone = log.undone()
    for e in log.edits:
        state = " (undone)" if e.n in undone else ""
        lines.append(f"  {e.n:>3}. {e.describe()}{state}  [{e.by} {e.at}] {e.command}")
    if log.active():
        lines.append(f"  undo one with: facepipe edit {shlex.quote(str(target.folder))} --undo N")
    return "\n".join(lines)


# -- the command line ----------------------------------------------------------------------------


class OrderedEdit(argparse.Action):
    """Collects ``--merge``/``--rename``/``--not-a-face``/``--split`` into one list, in the order
    given (they are applied in that order)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option: str | None = None,
    ) -> None:
        ops: list[Edit] = getattr(namespace, "ops", None) or []
        values = list(values) if isinstance(values, list) else [values]
        try:
            if self.dest == "merge":
                if len(values) < 2:
                    parser.error("--merge takes two or more identity ids: the one to keep first")
                ops.append(Edit(n=1, op="merge", id=_id(values[0]), ids=[_id(v) for v in values[1:]]))
            elif self.dest == "rename":
                ops.append(Edit(n=1, op="rename", id=_id(values[0]), name=values[1]))
            elif self.dest == "not_a_face":
                ops += [Edit(n=1, op="not_a_face", id=_id(v)) for v in values]
            elif self.dest == "split":
                ops.append(Edit(n=1, op="split", id=_id(values[0])))
            elif self.dest in ("tracks", "episodes"):
                last = ops[-1] if ops else None
                if last is None or last.op != "split" or last.tracks or last.episodes:
                    parser.error(f"{option} goes right after --split ID")
                if self.dest == "tracks":
                    last.tracks = [_id(v, "track") for v in values]
                else:
                    last.episodes = [str(v) for v in values]
        except ValueError as exc:
            parser.error(str(exc))
        namespace.ops = ops


def _id(text: str, what: str = "identity") -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an {what} id (a whole number, as in identities.csv)") from None
    if value < 0:
        raise ValueError(f"{text!r} is not an {what} id")
    return value


def request_of(args: argparse.Namespace) -> Request:
    ops = list(getattr(args, "ops", None) or [])
    for edit in ops:
        if edit.op == "split" and not (edit.tracks or edit.episodes):
            raise FacepipeError(
                f"--split {edit.id} needs the parts that are someone else: --tracks T... (a run) or "
                "--episodes EP... (a season)"
            )
    return Request(ops=ops, undo=list(args.undo or []), apply=Path(args.apply) if args.apply else None)
