"""``facepipe resume RUN_ID``: finish a run whose dispatcher is gone.

A run outlives the command that started it: its plan, its parameters and its progress are
in Redis, and its chunks are with the workers. When the dispatching command dies (killed, a
laptop closed, the broker gone for longer than ``--stall-timeout``), ``facepipe runs`` shows
the run as ``orphaned``, and ``facepipe resume RUN_ID --broker URL`` (from any host that
reaches the broker):

1. takes the run's lease (refused while another dispatcher follows it);
2. sends again every chunk that is neither applied nor stored: those never sent, and those
   whose message was lost (whichever copy of a chunk comes second does nothing), and nudges
   the writer;
3. follows the run to the end and writes its outputs, where the run recorded them (or
   ``--out``), with the season's series pass when the run is an episode of one (every
   episode of that season is resumed together).

A run that is already done just gets its outputs written again.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import redis

from facepipe.app.admin import client_for, run_state
from facepipe.app.banks import read_series_bank
from facepipe.app.episodes import Episode
from facepipe.app.outputs import prepare_out
from facepipe.app.runner import dispatcher_fault_hook, finish, follow_runs
from facepipe.distributed.bridge import CelerySender
from facepipe.distributed.dispatch import PlannedRun, pending_chunks
from facepipe.distributed.store import RunStore, list_runs
from facepipe.errors import FacepipeError
from facepipe.records import VideoInfo
from facepipe.settings import Settings


def resume_runs(settings: Settings, run_ids: list[str]) -> int:
    """``facepipe resume RUN_ID...``: send what is missing, follow, write the outputs."""
    client, broker = client_for(settings)
    stores = _stores(client, settings.redis_prefix, run_ids)
    metas = [store.meta() for store in stores]
    season = metas[0].get("season")
    runs, episodes = [], []
    for i, (store, meta) in enumerate(zip(stores, metas, strict=True)):
        runs.append(_planned(store, meta))
        episodes.append(_episode(i, store, meta, len(stores), settings.out, season is not None))
    out = _season_out(metas[0], settings.out) if season else episodes[0].out
    prior = read_series_bank(Path(metas[0]["bank"])) if season and metas[0].get("bank") else None
    shipping = metas[0].get("ship_frames")
    if shipping:  # the frames are decoded here again: this host needs the video
        settings = settings.model_copy(
            update={
                "ship_frames": True,
                "ship_quality": shipping["quality"],
                "max_message_mb": shipping["max_message_mb"],
            }
        )
    for run, episode, meta in zip(runs, episodes, metas, strict=True):
        applied, stored = run.store.next_seq(), len(run.store.stored())
        never = max(0, len(run.chunks) - run.store.sent())
        print(
            f"facepipe: {episode.label}resuming run {run.store.run_id} ({run_state(run.store, meta)}): "
            f"{run.info.path}; {applied} of {len(run.chunks)} chunks applied, {max(0, stored - applied)} "
            f"waiting for the writer; sending {len(run.to_send)} ({min(never, len(run.to_send))} never sent)",
            file=sys.stderr,
        )
    send = dispatcher_fault_hook(CelerySender(broker, tls_ca_certs=settings.tls_ca_certs))
    show = settings.progress and sys.stderr.isatty()
    follow_runs(runs, settings, send, show, broker=broker, resumed=True)
    created = min(float(meta.get("created") or time.time()) for meta in metas)
    return finish(runs, episodes, out, prior, time.time() - created, settings.keep_hours)


def _stores(client: redis.Redis, prefix: str, run_ids: list[str]) -> list[RunStore]:
    """The runs named, each with every other episode of its season, in episode order."""
    known = list_runs(client, prefix)
    for run_id in run_ids:
        if run_id not in known:
            raise FacepipeError(f"no run {run_id!r} under prefix {prefix!r} (see 'facepipe runs')")
    stores = [RunStore(client, prefix, run_id) for run_id in dict.fromkeys(run_ids)]
    seasons = {store.meta().get("season") for store in stores}
    if len(seasons) > 1:
        raise FacepipeError("those runs belong to different seasons or none: resume one season at a time")
    season = seasons.pop()
    if season is None:
        if len(stores) > 1:
            raise FacepipeError("resume one run at a time (or the episodes of one season)")
        return stores
    members = [RunStore(client, prefix, run_id) for run_id in known]
    members = [store for store in members if store.meta().get("season") == season]
    members.sort(key=lambda store: int(store.meta().get("index") or 0))
    expected = int(stores[0].meta().get("episodes") or len(members))
    if len(members) != expected:
        raise FacepipeError(
            f"season {season} had {expected} episodes but {len(members)} runs of it are left under "
            f"prefix {prefix!r} (was one deleted?); its series cannot be rebuilt"
        )
    return members


def _planned(store: RunStore, meta: dict) -> PlannedRun:
    """A recorded run as the dispatcher had it, with the chunks still to send."""
    if run_state(store, meta) == "expired":
        raise FacepipeError(
            f"run {store.run_id}'s faces have expired (--keep-hours after its outputs were written to "
            f"{meta.get('out')}); only its record is left"
        )
    chunks = store.plan()
    if not chunks:
        raise FacepipeError(
            f"run {store.run_id} was recorded without its chunk plan (an older facepipe), so it cannot be "
            "resumed; run the video again"
        )
    params = store.params()
    info = VideoInfo(params.video, params.frame_count, params.fps, params.width, params.height)
    return PlannedRun(store, info, chunks, params, pending_chunks(store))


def _season_out(meta: dict, out: Path | None) -> Path:
    return out if out is not None else Path(meta.get("season_out") or Path("facepipe-runs") / meta["season"])


def _episode(index: int, store: RunStore, meta: dict, count: int, out: Path | None, season: bool) -> Episode:
    """Where a resumed run's outputs go: ``--out``, else where the run recorded them (when that
    folder can be made here), else ``facepipe-runs/RUN_ID``."""
    name = str(meta.get("episode") or store.run_id)
    if season:
        folder = _season_out(meta, out) / name
    elif out is not None:
        folder = out
    else:
        recorded = Path(meta["out"]) if meta.get("out") else None
        usable = recorded is not None and _makeable(recorded)
        folder = recorded if usable else Path("facepipe-runs") / store.run_id
    label = f"episode {index + 1}/{count} ({name}), " if season else ""
    info = VideoInfo(str(meta.get("video")), 0, 0.0, 0, 0)
    return Episode(index, info, name, prepare_out(folder, store.run_id), label, store.run_id)


def _makeable(folder: Path) -> bool:
    """Whether ``folder`` exists here or could be made (its nearest existing parent is writable)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK)
