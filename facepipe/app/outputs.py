"""What a finished run leaves in its output folder, and the summary printed at the end.

:func:`finish_run` is the one way a run (new, or rebuilt from Redis) becomes files:
the final pass (:func:`facepipe.distributed.writer.finalise`), ``summary.json``
(:class:`~facepipe.app.summary.Summary`), ``faces.jsonl``, ``bank.npz`` and ``report.html``.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path

import numpy as np
import orjson

from facepipe.app.banks import write_run_bank
from facepipe.app.files import write_atomically
from facepipe.app.report.build import build_report
from facepipe.app.summary import DecodeFigures, Summary, unit_costs
from facepipe.clustering.final import FinalIdentities
from facepipe.clustering.screen import screen_times
from facepipe.distributed.store import RunStore
from facepipe.distributed.writer import finalise
from facepipe.errors import FacepipeError
from facepipe.records import FaceLine
from facepipe.settings import Clustering

log = logging.getLogger(__name__)

#: exit status of a run that finished but lost some chunks
EXIT_LOST_CHUNKS = 3
#: written last: a folder that holds it holds every output of the run
SUMMARY_FILE = "summary.json"


def prepare_out(out: Path | None, run_id: str) -> Path:
    """The output folder (default ``facepipe-runs/RUN_ID``), created and checked writable now."""
    out = out or Path("facepipe-runs") / run_id
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe_file = out / ".facepipe-write-test"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as exc:
        raise FacepipeError(
            f"cannot write to output folder {out}: {exc.strerror} (pass a writable --out)"
        ) from None
    return out


def finish_run(
    store: RunStore, out: Path, elapsed_s: float, keep_hours: float | None = None
) -> tuple[Summary, FinalIdentities]:
    """Write every output of a finished run and mark it done; returns its summary and identities.

    ``summary.json`` goes last (and an older one first): a folder holding it holds every output
    of the run, each written whole (:mod:`facepipe.app.files`). A full disk or an unwritable
    folder is a one-line :class:`FacepipeError` that says how to get the outputs.

    ``keep_hours`` (a broker's run, not the embedded default's): the run's bulky keys expire
    that long after the outputs are written, and the run's record notes where they are.
    """
    t0 = time.monotonic()
    params = store.params()
    final = finalise(store, params)
    summary = build_summary(store, elapsed_s, final)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / SUMMARY_FILE).unlink(missing_ok=True)
        write_atomically(out / "faces.jsonl", b"".join(line.to_json() + b"\n" for line in final.faces))
        write_identities_csv(out / IDENTITIES_CSV, summary)
        write_run_bank(out / "bank.npz", final, params, store.run_id)
        faces = [orjson.loads(line.to_json()) for line in final.faces]
        # the thumbnails the detect workers kept: no decoding
        build_report(out, kept=store.thumbnails, outputs=(summary, faces))
        if params.save_images and params.save_dir and Path(params.save_dir).is_dir():
            sort_saved_crops(Path(params.save_dir), store.faces(), final)
        summary.write(out / SUMMARY_FILE)
        reapply_edits(out, store.run_id)  # a person's edits of this run, if any, apply again
    except OSError as exc:
        from_redis = keep_hours is not None
        raise FacepipeError(_cannot_write(store.run_id, out, exc, from_redis)) from None
    log.debug("outputs written in %.2f s", time.monotonic() - t0)
    store.set_meta(status="failed-chunks" if summary.failed_chunks else "done")
    if keep_hours is not None:
        store.retain(keep_hours * 3600, out=str(out.resolve()), finished=time.time())
    return summary, final


def _cannot_write(run_id: str, out: Path, exc: OSError, from_redis: bool) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    then = (
        f"then 'facepipe report {run_id} --broker URL --out DIR' writes them from Redis"
        if from_redis
        else "then run again (an embedded run keeps nothing once it exits)"
    )
    return (
        f"cannot write the outputs of run {run_id} to {out}: {where}{exc.strerror or exc}; no "
        f"summary.json was written (free space or pass a writable --out, {then})"
    )


def sort_saved_crops(save_dir: Path, faces: list[FaceLine], final: FinalIdentities) -> None:
    """Move the writer's crops from provisional identity folders into the final ones.

    The writer saves each crop as ``<provisional identity>/frame_<frame>_<n>.jpg`` (``unplaced``
    while its track has none) as soon as its chunk commits; the final pass decides the
    identity. Crops of rejected faces go to ``rejected/``. Idempotent: a crop already in place
    is left alone (``facepipe report RUN_ID`` may sort again). Needs the crop folder on this
    host (shared storage, or the embedded default).
    """
    staging = save_dir / ".sorting"
    moves = []
    seen: dict[int, int] = {}
    for face, label in zip(faces, final.labels.tolist(), strict=True):
        n = seen.get(face.frame, 0)  # the face's position among its frame's detections
        seen[face.frame] = n + 1
        name = f"frame_{face.frame}_{n}.jpg"
        source = save_dir / (str(face.identity) if face.identity >= 0 else "unplaced") / name
        target = save_dir / (str(label) if label >= 0 else "rejected") / name
        if source != target and source.is_file():
            moves.append((source, staging / name, target))
    for source, staged, _ in moves:  # two steps: identity folders swap numbers
        staged.parent.mkdir(exist_ok=True)
        source.replace(staged)
    for _, staged, target in moves:
        target.parent.mkdir(exist_ok=True)
        staged.replace(target)
    for folder in [staging, *save_dir.iterdir()]:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def exit_status(summary: Summary) -> int:
    """0, or :data:`EXIT_LOST_CHUNKS` when chunks were lost."""
    return EXIT_LOST_CHUNKS if summary.failed_chunks else 0


def _how(summary: Summary) -> str:
    """How the identities were made, in a few words for the summary line."""
    params = summary.params
    mode = params.get("clustering", "online")
    if mode == Clustering.seed:
        return f"the seed's online clustering at {params.get('sim_thresh')}"
    if mode == Clustering.online:
        online, sim, merge = summary.online_identities, params.get("sim_thresh"), params.get("merge_thresh")
        return f"online {online} at {sim}, merged at {merge}"
    return f"{summary.tracks} face tracks clustered at {params.get('merge_thresh')}"


def build_summary(store: RunStore, elapsed_s: float, final: FinalIdentities) -> Summary:
    """The run's figures, read back from Redis (the writer's exactly-once counters)."""
    meta = store.meta()
    counters = store.counters()
    params = meta.get("params", {})
    timings = store.timings()
    wall = {k: v for k, v in timings.items() if not k.startswith("cpu_")}
    cpu = {k.removeprefix("cpu_"): v for k, v in timings.items() if k.startswith("cpu_")}
    tracks = params.get("clustering") == Clustering.tracks
    return Summary(
        run_id=store.run_id,
        video=meta.get("video"),
        elapsed_s=round(elapsed_s, 3),
        chunks=meta.get("chunks"),
        **counters.model_dump(include=set(Summary.model_fields)),  # frames_read ... online_identities
        faces=len(final.faces),
        faces_rejected=len(final.rejected),
        identities=len(final),
        people=int((~final.extras).sum()),
        extras=[int(i) for i in np.flatnonzero(final.extras)],
        counts={str(identity): int(count) for identity, count in enumerate(final.counts)},
        shots=counters.cuts + 1 if tracks and counters.frames_sampled else None,
        tracks=len({face.track for face in final.faces} | {face.track for face in final.rejected})
        if tracks
        else None,
        rejected_faces=[
            {"frame": face.frame, "bbox": face.bbox, "det_score": face.det_score} for face in final.rejected
        ],
        stage_seconds=wall,
        cpu_seconds=cpu,
        **unit_costs(cpu, counters.frames_read, counters.frames_sampled, counters.faces_embedded),
        runtimes=store.runtimes(),
        decode=DecodeFigures.of(counters.frames_read, params),
        failed_chunks=store.failed(),
        warnings=store.warnings(),
        params=params,
        screen_time={
            str(identity): screen
            for identity, screen in screen_times(
                [face.identity for face in final.faces],
                [face.frame for face in final.faces],
                [face.shot for face in final.faces],
                float(params.get("fps") or 25.0),
                int(params.get("frame_step") or 1),
                int(params.get("frame_count") or 0),
            ).items()
        },
    )


def write_outputs(out_dir: Path, summary: Summary, final: FinalIdentities) -> None:
    """``faces.jsonl`` (one line per embedded face, in applied order), ``identities.csv``, then
    ``summary.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(out_dir / "faces.jsonl", b"".join(line.to_json() + b"\n" for line in final.faces))
    write_identities_csv(out_dir / IDENTITIES_CSV, summary)
    summary.write(out_dir / SUMMARY_FILE)


IDENTITIES_CSV = "identities.csv"
#: the columns of a run's identities.csv (README, "What a run leaves")
CSV_COLUMNS = (
    "identity",
    "name",
    "faces",
    "screen_s",
    "share",
    "first_s",
    "last_s",
    "shots",
    "segments",
    "extra",
)


def write_identities_csv(path: Path, summary: Summary) -> Path:
    """One row per identity, most screen time first: for spreadsheets."""
    extras = set(summary.extras)
    rows = []
    for key, count in summary.counts.items():
        seen = summary.screen_time.get(key)
        rows.append(
            [
                int(key),
                summary.names.get(key, ""),
                count,
                f"{seen.seconds:g}" if seen else "",
                "" if seen is None or seen.share is None else f"{seen.share:g}",
                f"{seen.first_s:g}" if seen else "",
                f"{seen.last_s:g}" if seen else "",
                "" if seen is None or seen.shots is None else seen.shots,
                len(seen.segments) if seen else "",
                int(int(key) in extras),
            ]
        )
    rows.sort(key=lambda row: (-float(row[3] or 0), row[0]))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return write_atomically(path, text.getvalue().encode("utf-8"))


def reapply_edits(out: Path, run_id: str) -> bool:
    """After outputs are written again (``facepipe report RUN_ID``), a person's edits of this very
    run apply to them again; edits of another run in the folder are left alone, with a warning.
    True when edits were applied (the report is then written too)."""
    from facepipe.app.curate import EDITS_FILE, reapply

    if not (out / EDITS_FILE).is_file():
        return False
    return reapply(out, run_id)


def format_summary(summary: Summary, out_dir: Path) -> str:
    """The human summary: what happened, per-identity frequency, where the files are."""
    total = sum(summary.counts.values()) or 1
    params = summary.params
    extras = set(summary.extras)
    shots = f", {summary.shots} shots" if summary.shots else ""
    lines = [
        f"run {summary.run_id} finished in {summary.elapsed_s:.1f} s",
        f"  frames read {summary.frames_read}, sampled {summary.frames_sampled}, "
        f"blurry (skipped) {summary.frames_blurry}{shots}",
        *[f"  models: {runtime}" for runtime in summary.runtimes],
        f"  faces detected and queued {summary.faces_detected}, embedded "
        f"{summary.faces_embedded}, saved {summary.faces_saved}",
        f"  identities {summary.identities} ({_how(summary)}):",
    ]
    ranked = sorted(summary.counts.items(), key=lambda kv: (-kv[1], int(kv[0])))
    for identity, count in ranked:
        if int(identity) not in extras:
            seen = summary.screen_time.get(identity)
            screen = f", {seen.seconds:7.1f} s on screen" if seen else ""
            name = summary.names.get(identity)
            lines.append(
                f"    id {identity:>4}: {count:6d} faces  ({100 * count / total:5.1f}%){screen}"
                + (f"  {name}" if name else "")
            )
    if extras:
        listed = ", ".join(f"{i} ({summary.counts[str(i)]})" for i in sorted(extras))
        lines.append(f"  extras (fewer than {params.get('min_faces')} faces): {listed}")
    lines.append(f"  global tally: {sum(summary.counts.values())} faces in {summary.identities} identities")
    if summary.faces_rejected:
        lines.append(
            f"  rejected as no face: {summary.faces_rejected} detections (dark, and the recogniser "
            "unsure; see rejected_faces in summary.json)"
        )
    if summary.frames_unreadable:
        lines.append(
            f"  WARNING: {summary.frames_unreadable} sampled frames could not be read: the stream "
            "ends before the frame count its header gives (a few at the end are common; many mean a "
            "truncated or damaged file); the rest were processed"
        )
    for warning in summary.warnings:
        lines.append(f"  WARNING: {warning}")
    if summary.failed_chunks:
        lost_frames = summary.frames_lost - summary.frames_unreadable
        lines.append(f"  LOST frame ranges ({lost_frames} sampled frames): {summary.lost_ranges}")
    lines.append(f"  report: {out_dir}/report.html")
    lines.append(f"  data:   {out_dir}/summary.json, faces.jsonl, identities.csv, bank.npz")
    return "\n".join(lines)
