"""``facepipe name OUT --refs DIR`` and ``facepipe find PHOTO --bank BANK``: faces in photos against
identities.

Photos are embedded with the run's own models (the detector and recogniser its parameters
name, on this host's runtime): the largest face of each photo, aligned as the run aligned
its faces. A bank that another recogniser made is refused, since its embeddings cannot be
compared. The decisions are :mod:`facepipe.clustering.matching`'s; names become edits
(:mod:`facepipe.app.curate`), so they reach every output and can be undone like any edit.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facepipe.app.banks import check_bank_model, read_series_bank
from facepipe.app.curate import (
    Edit,
    centroids_of,
    command_line,
    commit,
    locked,
    now_text,
    open_target,
    read_log,
    read_outputs,
    replay,
    user_name,
)
from facepipe.app.report.formatting import fmt_time
from facepipe.clustering.matching import decide_names, name_scores, rank_people, unit
from facepipe.clustering.screen import segments
from facepipe.errors import FacepipeError
from facepipe.inference.align import align
from facepipe.inference.detector import FaceDetector
from facepipe.inference.embedder import FaceEmbedder
from facepipe.settings import auto_det_input

#: the photo files ``--refs`` and ``find`` read
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
#: a photo's faces are found at this detector score (photos are sharper than video frames)
PHOTO_DET_THRESH = 0.5


@dataclass
class Models:
    """The detector and recogniser a run used, loaded on this host."""

    detector: FaceDetector
    embedder: FaceEmbedder

    @classmethod
    def of(cls, params: dict[str, Any]) -> Models:
        backend, precision = params.get("backend") or "auto", params.get("precision") or "fp32"
        return cls(
            FaceDetector.from_settings(params.get("det_model"), 0, "auto", backend, precision),  # type: ignore[arg-type]
            FaceEmbedder.from_settings(params.get("rec_model"), 0, "auto", backend, precision),  # type: ignore[arg-type]
        )


def embed_photo(path: Path, models: Models) -> tuple[np.ndarray, int] | None:
    """The unit embedding of the photo's largest face and how many faces it has (None: no face).
    An unreadable file is a one-line error."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FacepipeError(f"{path} is not a readable image (use JPEG or PNG photos)")
    height, width = image.shape[:2]
    faces = models.detector.detect(image, auto_det_input(width, height), PHOTO_DET_THRESH, 0.4, 0)
    if not faces:
        return None
    largest = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
    return models.embedder.embed([align(image, largest)])[0], len(faces)


def reference_photos(refs: Path) -> dict[str, list[Path]]:
    """``DIR/<Name>/*.jpg`` and ``DIR/<Name>.jpg`` (any of :data:`IMAGE_SUFFIXES`) by name."""
    if not refs.is_dir():
        raise FacepipeError(
            f"--refs {refs} is not a folder (pass a folder of DIR/<Name>.jpg or DIR/<Name>/*.jpg)"
        )
    found: dict[str, list[Path]] = {}
    for entry in sorted(refs.iterdir()):
        if entry.is_dir():
            photos = sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if photos:
                found.setdefault(entry.name, []).extend(photos)
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(entry.stem, []).append(entry)
    if not found:
        raise FacepipeError(f"no photos in {refs} (expected {refs}/<Name>.jpg or {refs}/<Name>/*.jpg)")
    return found


def reference_embeddings(refs: Path, models: Models) -> tuple[list[str], list[np.ndarray]]:
    """Each name's reference embeddings; every photo must show a face (else one line names them)."""
    names, vectors, faceless, crowded = [], [], [], []
    for name, photos in reference_photos(refs).items():
        embedded = []
        for photo in photos:
            got = embed_photo(photo, models)
            if got is None:
                faceless.append(photo.name if photo.parent == refs else f"{photo.parent.name}/{photo.name}")
                continue
            embedded.append(got[0])
            if got[1] > 1:
                crowded.append(photo.name)
        if embedded:
            names.append(name)
            vectors.append(np.stack(embedded))
    if faceless:
        raise FacepipeError(
            f"no face found in {len(faceless)} reference photo(s) in {refs}: {', '.join(faceless[:8])}"
            + (" ..." if len(faceless) > 8 else "")
            + " (use photos where the face is clear, or remove these)"
        )
    if crowded:
        print(
            f"facepipe: note: several faces in {', '.join(crowded[:5])}; the largest one is used",
            file=sys.stderr,
        )
    return names, vectors


def name_command(path: str, refs: str, thresh: float, margin: float, dry_run: bool = False) -> int:
    """``facepipe name OUT --refs DIR``: name the identities that match one person clearly."""
    target = open_target(path)
    with locked(target):
        log = read_log(target)
        outputs = read_outputs(target)
        people = replay(outputs.people, log.active(), outputs.context)
        params = outputs.summary.params if target.kind == "run" else outputs.summary.get("params") or {}
        bank_model = outputs.bank["model"] if target.kind == "run" else outputs.bank.model
        check_bank_model(bank_model, params.get("rec_model"), target.folder / "bank.npz")
        if sys.stderr.isatty():  # progress is for people; a log keeps errors on one line
            print(f"facepipe: embedding the photos in {refs} with the run's models", file=sys.stderr)
        models = Models.of(params)
        names, vectors = reference_embeddings(Path(refs), models)
        ids = people.ids
        matches = decide_names(
            ids, name_scores(centroids_of(outputs, people, ids), vectors), names, thresh, margin
        )
        command, who, when = command_line(), user_name(), now_text()
        new, n = [], log.next_n()
        lines = []
        for match in matches:
            by = people.named_by.get(match.identity)
            current = people.names.get(match.identity)
            if match.verdict != "named":
                continue
            if by in ("hand", "bank", "file") and current:
                lines.append(
                    f'  {match.identity}: kept "{current}" (named by {by}); the photos say {match.name}'
                )
                continue
            if current == match.name:
                lines.append(f"  {match.identity}: {match.name} already ({match.evidence()})")
                continue
            edit = Edit(
                n=n,
                op="rename",
                id=match.identity,
                name=match.name,
                source="refs",
                evidence=match.evidence(),
                command=command,
                by=who,
                at=when,
            )
            new.append(edit)
            n += 1
            lines.append(f"  {match.identity}: {match.name} ({match.evidence()})")
        ambiguous = [m for m in matches if m.verdict == "ambiguous"]
        unknown = [m for m in matches if m.verdict == "unknown"]
        print(f"{target.kind} {target.id}: {len(ids)} identities, {len(names)} names from {refs}")
        print(f"named ({sum(1 for m in matches if m.verdict == 'named')}):")
        print("\n".join(lines) or "  none")
        if ambiguous:
            print("ambiguous, left unnamed (two names fit about as well):")
            for m in ambiguous:
                print(f"  {m.identity}: {m.name} {m.score:.2f} or {m.runner_up} {m.runner_up_score:.2f}")
        if unknown:
            listed = ", ".join(str(m.identity) for m in unknown)
            best = max(m.score for m in unknown)
            print(f"unknown, left unnamed ({len(unknown)}; closest to a name at cosine {best:.2f}): {listed}")
        named_ids: dict[str, list[int]] = {}
        for m in matches:
            if m.verdict == "named" and m.name is not None:
                named_ids.setdefault(m.name, []).append(m.identity)
        for name, several in named_ids.items():
            if len(several) > 1:
                print(
                    f"note: {name} fits {len(several)} identities ({', '.join(map(str, several))}): "
                    f"if they are one person, merge them: facepipe edit {path} --merge "
                    + " ".join(map(str, several))
                )
        missing = [name for name in names if name not in named_ids]
        if missing:
            print(f"not found: {', '.join(missing)}")
        if dry_run or not new:
            print("nothing written (--dry-run)" if dry_run else "nothing to change")
            return 0
        commit(outputs, log, new)
    print(f"names written to every output in {target.folder} ({len(new)} edit(s) in edits.json)")
    return 0


def find_command(photo: str, bank_path: str | None, top: int, thresh: float, params: dict[str, Any]) -> int:
    """``facepipe find PHOTO --bank BANK``: where the person in the photo appears, best match first.
    Exit 0 with matches, 2 when nobody matches."""
    if not bank_path:
        raise FacepipeError("find needs --bank: a season's OUT/series/bank.npz, or a run's OUT/bank.npz")
    path = Path(bank_path)
    if path.is_dir():
        path = path / "bank.npz"
    bank = read_series_bank(path, expect_model=params.get("rec_model"))
    if not Path(photo).is_file():
        raise FacepipeError(f"photo not found: {photo}")
    if top < 1:
        raise FacepipeError("--top must be 1 or more")
    got = embed_photo(Path(photo), Models.of(params))
    if got is None:
        raise FacepipeError(f"no face found in {photo} (use a photo where the face is clear)")
    query, n_faces = got
    # a person is as close as the closest of its anchors (a merge of two looks matches either)
    assert bank.face_anchors is not None
    anchors, rows = np.unique(bank.face_anchors, return_inverse=True)
    sums = np.zeros((len(anchors), bank.face_embeddings.shape[1]))
    np.add.at(sums, rows, bank.face_embeddings.astype(np.float64))
    anchor_sims = rank_people(query, unit(sums)) if len(anchors) else np.zeros(0)
    person_of = np.zeros(len(anchors), np.int64)
    person_of[rows] = bank.face_identities
    best: dict[int, float] = {}
    for a, sim in enumerate(anchor_sims.tolist()):
        person = int(person_of[a])
        best[person] = max(best.get(person, -1.0), sim)
    ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
    face_note = f" (the largest of its {n_faces} faces)" if n_faces > 1 else ""
    matched = [(p, s) for p, s in ranked if s >= thresh][:top]
    if not matched:
        closest = (
            f"the closest is {_who(bank, ranked[0][0])} at {ranked[0][1]:.2f}, "
            f"below --match-thresh {thresh:g}"
            if ranked
            else "the bank has no people"
        )
        print(f"nobody in {path} matches {photo}{face_note}: {closest}")
        return 2
    print(f"{photo}{face_note}: {len(matched)} match(es) in {path}, best first")
    for rank, (person, sim) in enumerate(matched, 1):
        print(f"{rank}. {_who(bank, person)}: similarity {sim:.2f}")
        for line in _appearances(bank, person):
            print(f"     {line}")
    return 0


def _who(bank: Any, person: int) -> str:
    name = bank.name_of(person)
    return f'identity {person} "{name}"' if name else f"identity {person}"


def _appearances(bank: Any, person: int) -> list[str]:
    """Per episode: faces, screen time and the times the person is on screen."""
    lines = []
    mine = bank.face_identities == person
    for e, episode in enumerate(bank.episodes.tolist()):
        here = mine & (bank.face_episodes == e)
        if not here.any():
            continue
        fps, step = float(bank.fps[e]), int(bank.frame_steps[e])
        stretches = segments(bank.face_frames[here], step, fps, int(bank.frame_counts[e]) or None)
        shown = ", ".join(f"{fmt_time(a)}-{fmt_time(b)}" for a, b in stretches[:8])
        more = f" and {len(stretches) - 8} more" if len(stretches) > 8 else ""
        count = int(here.sum())
        lines.append(f"{episode}: {count} faces, {count * step / fps:.1f} s on screen, at {shown}{more}")
    return lines
