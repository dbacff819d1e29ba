"""Exactly-once, order-independent identities under real faults.

Real workers are killed with real signals at chosen points (after N chunks; between the
work and the ack), then restarted; messages are delivered twice; a chunk is corrupt;
two writers run at once. Each run's full identity table (embeddings, centroids, refine
counts, counts, every face line) must equal a clean run's, field by field.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import celeryconfig
from facepipe.distributed.bridge import CelerySender
from facepipe.distributed.embedded import EmbeddedServer
from facepipe.distributed.messages import EmbedMessage, TaskMessage, WriteMessage
from facepipe.distributed.stages import DETECT, EMBED, WRITE, Stage
from facepipe.distributed.store import RunStore, connect
from facepipe.media.plan import plan
from facepipe.media.probe import probe
from facepipe.records import Chunk, ChunkRecord, DetectedFace, RunParams
from facepipe.settings import Settings
from tests.cluster import Cluster, describe, identity_table
from tests.conftest import SHARED, t1_frames, write_video
from tests.helpers import facepipe, reference_models
from tests.reference import in_process_run

HAMILTON = SHARED / "videos" / "hamilton_short.mp4"
# Frame-range chunks (--decoder opencv): the faults need many chunks, and keyframe chunks
# are whole GOPs (5 of them in hamilton at this step). How a chunk reads its frames does not
# change what a fault does to it.
if HAMILTON.is_file():
    # The real clip (cuts, profiles, an audience): 46 sampled frames in 23 chunks of 2.
    SETTINGS = Settings(frame_step=6, chunk_size=2, task_retries=1, decoder="opencv")
else:
    # Without ../shared: 40 frames of six real faces, 20 chunks of 2, ~12 faces a chunk.
    SETTINGS = Settings(frame_step=1, chunk_size=2, task_retries=1, decoder="opencv")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if HAMILTON.is_file():
        return HAMILTON
    return write_video(tmp_path_factory.mktemp("faults") / "t1-40.mp4", t1_frames(40))


def _chunks(video: Path) -> list:
    return plan(probe(video), SETTINGS.decoder, SETTINGS.frame_step, SETTINGS.chunk_size).chunks


@pytest.fixture()
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def clean(video: Path) -> dict:
    c = Cluster()
    try:
        c.start_all()
        table = identity_table(c.run(video, SETTINGS))
    finally:
        c.close()
    print(f"\nclean run: {describe(table)}")
    return table


def _restart_dead(cluster: Cluster) -> list[str]:
    restarted = []
    for name, proc in list(cluster.workers.procs.items()):
        if proc.poll() is not None:
            cluster.workers.restart(name)
            restarted.append(name)
    return restarted


def test_clean_run_equals_one_process(clean: dict, video: Path) -> None:
    """The clean run (face tracks on, the default) is what one process computes in order."""
    detector, embedder = reference_models()
    ref = in_process_run(str(video), SETTINGS, detector, embedder)
    assert clean["final"] == [line.to_json() for line in ref]
    assert clean["tracker"] is not None and any(f["track"] is not None for f in clean["faces"])
    people = len({line.identity for line in ref})
    assert people == 6 if video.name.startswith("t1") else people >= 3


@pytest.mark.parametrize("queue", ["detect", "embed", "writer"])
def test_sigkill_after_n_chunks_then_restart(cluster: Cluster, clean: dict, video: Path, queue: str) -> None:
    cluster.start_all()
    events: list[str] = []

    def tick(store: RunStore) -> None:
        if not events and store.next_seq() >= 4:
            cluster.workers.kill(queue, signal.SIGKILL)
            events.append(f"SIGKILL {queue} at chunk {store.next_seq()}")
            time.sleep(0.3)
            cluster.workers.restart(queue)

    table = identity_table(cluster.run(video, SETTINGS, on_tick=tick))
    assert events, "the run finished before the kill point"
    print(f"\n{events[0]}, restarted: {describe(table)}")
    assert table == clean


def test_a_worker_killed_mid_scan_holds_up_redelivery_for_seconds(
    cluster: Cluster, clean: dict, video: Path
) -> None:
    """Workers scan for abandoned messages under a lock in Redis (kombu's ``unacked_mutex``);
    one killed mid-scan leaves the lock until it expires, and until then nothing is
    redelivered. Here the embed worker dies holding a chunk (one it has recorded as taken)
    while such a lock is left, set as a scanning worker sets it: with kombu's 5-minute expiry
    only sending the chunk again (after 20 s) would finish the run; with ours the redelivery
    does, and the table is the same."""
    expire = celeryconfig.broker_transport_options["unacked_mutex_expire"]
    assert expire <= 15

    def held_by_embed(store: RunStore) -> list[int]:
        """Chunks of this run whose embed delivery kombu recorded ([message, exchange, routing
        key]) and whose result is not stored: what the embed worker holds."""
        held = []
        for raw in cluster.client.hvals("unacked"):
            message, _, queue = json.loads(raw)
            body = json.loads(base64.b64decode(message["body"]))[0][0]  # the task's one message
            seq = body["chunk"]["seq"]
            if queue == "embed" and body["run_id"] == store.run_id and not store.is_stored(seq):
                held.append(seq)
        return held

    cluster.start_all()
    embed = cluster.workers.procs["embed"]
    held: list[int] = []
    killed_at = back_at = 0.0

    def tick(store: RunStore) -> None:
        nonlocal killed_at, back_at
        if not held and store.next_seq() >= 4:
            os.killpg(embed.pid, signal.SIGSTOP)  # frozen: what it holds stays held
            time.sleep(0.3)  # what it sent before lands first
            held.extend(held_by_embed(store))
            if not held:
                os.killpg(embed.pid, signal.SIGCONT)
                return
            cluster.client.set("unacked_mutex", "a-scanner-killed-mid-scan", ex=expire)
            cluster.workers.kill("embed", signal.SIGKILL)
            killed_at = time.monotonic()
            cluster.workers.restart("embed")
        elif held and not back_at and store.is_stored(held[0]):
            back_at = time.monotonic()

    store = cluster.run(video, SETTINGS, on_tick=tick)
    back_at = back_at or time.monotonic()  # (the held chunk may have been the last one in)
    table = identity_table(store)
    assert held, "the run finished before the embed worker was caught holding a chunk"
    waited = back_at - killed_at
    print(f"\nlock left, embed killed holding chunk {held[0]}: back after {waited:.1f} s; {describe(table)}")
    assert cluster.resent == 0, "the held chunk came back only when it was sent again"
    assert expire - 1 <= waited < expire + 10, waited  # held up by the lock, then redelivered
    assert table == clean


@pytest.mark.parametrize("stage", ["detect:3", "embed:5", "write:7"])
def test_sigkill_between_work_and_ack(cluster: Cluster, clean: dict, video: Path, stage: str) -> None:
    """The worker does the work (hands off / stores / commits), then dies before acking."""
    queue = {"detect": "detect", "embed": "embed", "write": "writer"}[stage.split(":")[0]]
    for name in ("detect", "embed", "writer"):
        env = {"FACEPIPE_FAULT_INJECT": stage} if name == queue else {}
        cluster.start(name, name, **env)
    restarted: list[str] = []
    table = identity_table(
        cluster.run(video, SETTINGS, on_tick=lambda s: restarted.extend(_restart_dead(cluster)))
    )
    assert restarted == [queue], f"expected one crash of {queue}, restarted {restarted}"
    print(f"\nSIGKILL in {stage} between work and ack, {queue} restarted: {describe(table)}")
    assert table == clean


def test_every_message_delivered_twice(cluster: Cluster, clean: dict, video: Path) -> None:
    cluster.start_all()
    send_once = CelerySender(cluster.server.url)

    def send_twice(stage: Stage, message: TaskMessage) -> None:
        send_once(stage, message)
        send_once(stage, message)

    store = cluster.run(video, SETTINGS, send=send_twice)
    table = identity_table(store)
    print(f"\nevery detect task delivered twice: {describe(table)}")
    assert table == clean
    assert store.counters().chunks_applied == len(_chunks(video))


def test_two_writer_processes_at_once(cluster: Cluster, clean: dict, video: Path) -> None:
    cluster.start("detect", "detect")
    cluster.start("embed", "embed", procs=2)
    cluster.start("writer", "writer", procs=2)  # concurrency 2 by mistake...
    cluster.start("writer-b", "writer")  # ...and a second writer worker
    table = identity_table(cluster.run(video, SETTINGS))
    print(f"\nthree writer processes at once: {describe(table)}")
    assert table == clean


def test_more_workers_give_the_same_table(cluster: Cluster, clean: dict, video: Path) -> None:
    cluster.start("detect", "detect", procs=3)
    cluster.start("embed", "embed", procs=2)
    cluster.start("writer", "writer")
    assert identity_table(cluster.run(video, SETTINGS)) == clean


def test_a_corrupt_chunk_is_retried_then_reported_lost(cluster: Cluster, clean: dict, video: Path) -> None:
    cluster.start_all()
    send = CelerySender(cluster.server.url)

    face_frames = {f["frame"] for f in clean["faces"]}
    step = SETTINGS.frame_step
    target = next(c for c in _chunks(video)[1:] if face_frames & set(c.frames(step)))  # a chunk with faces

    def corrupt_one_chunk(stage: Stage, message: TaskMessage) -> None:
        chunk = message.chunk
        if chunk.seq != target.seq:
            return send(stage, message)
        record = ChunkRecord(
            seq=chunk.seq, start=chunk.start, stop=chunk.stop, step=step, frames_sampled=2, frames_read=2
        )
        record.faces = [
            DetectedFace(frame=chunk.start, index=0, bbox=[0, 0, 99, 99], det_score=0.9, aligned=True)
        ]
        record.crops = ["bm90IGFuIGltYWdl"]  # base64 of "not an image"
        send(EMBED, EmbedMessage(run_id=message.run_id, prefix=message.prefix, chunk=chunk, record=record))

    store = cluster.run(video, SETTINGS, send=corrupt_one_chunk)
    failed = store.failed()
    lost = target
    assert (
        len(failed) == 1 and failed[0]["seq"] == target.seq and failed[0]["frames"] == [lost.start, lost.stop]
    )
    assert "not a 112x112 colour image" in failed[0]["reason"]
    counters = store.counters()
    assert counters.chunks_failed == 1 and counters.frames_lost == len(lost.frames(step))
    assert counters.chunks_applied == len(_chunks(video)) - 1
    faces = store.faces()
    assert {f.frame for f in faces} == face_frames - set(lost.frames(step)) != face_frames
    print(
        f"\ncorrupt chunk {target.seq}: lost frames {lost.start}-{lost.stop - 1} reported "
        f"({failed[0]['reason']}); {len(faces)} faces kept"
    )


def test_a_chunk_the_writer_cannot_apply_is_retried_then_lost_not_stalled(
    cluster: Cluster, video: Path
) -> None:
    """A stored result whose crop cannot be decoded for saving makes every write attempt fail."""
    cluster.start("writer", "writer")
    settings = Settings(
        frame_step=2,
        chunk_size=2,
        task_retries=1,
        save_images=True,
        save_dir=cluster.tmp / "faces",
        clustering="seed",
    )
    store = RunStore(cluster.client, "fp", "unapplicable")
    store.create({"params": RunParams.build(settings, probe(video)), "chunks": 3})
    damaged = ChunkRecord(seq=1, start=4, stop=8, step=2, frames_sampled=2)
    damaged.faces = [DetectedFace(frame=4, index=0, bbox=[0, 0, 80, 80], det_score=0.9, aligned=True)]
    damaged.crops = ["bm90IGFuIGltYWdl"]  # base64 of "not an image"
    damaged.set_embeddings(np.ones((1, 512), np.float32) / np.sqrt(512))
    for record in (
        ChunkRecord(seq=0, start=0, stop=4, step=2),
        damaged,
        ChunkRecord(seq=2, start=8, stop=12, step=2),
    ):
        store.put_chunk(record)
    CelerySender(cluster.server.url)(
        WRITE, WriteMessage(run_id=store.run_id, prefix="fp", chunk=Chunk(seq=0, start=0, stop=4))
    )
    deadline = time.monotonic() + 30
    while store.next_seq() < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.next_seq() == 3, f"the run stalled at chunk {store.next_seq()}"
    failed = store.failed()
    assert [f["seq"] for f in failed] == [1] and "112x112" in failed[0]["reason"], failed
    assert store.counters().chunks_applied == 2 and store.counters().frames_lost == 2
    log = (cluster.tmp / "logs" / "writer.log").read_text()
    assert "retry 1" in log and "giving up after 1 retries" in log


def test_a_worker_whose_model_cannot_load_stops_and_loses_nothing(
    cluster: Cluster, clean: dict, video: Path
) -> None:
    # Preloaded: the worker refuses to start, saying why in one line.
    cluster.start(
        "detect-preload", "detect", FACEPIPE_PRELOAD="detector", FACEPIPE_DET_MODEL="/no/such/det.onnx"
    )
    proc = cluster.workers.procs["detect-preload"]
    assert proc.wait(timeout=60) != 0
    log = (cluster.tmp / "logs" / "detect-preload.log").read_text()
    assert "cannot start: model file not found: /no/such/det.onnx" in log
    # Loaded on first use: the first chunk stops the worker and goes back to the queue.
    broken = cluster.tmp / "broken.onnx"
    broken.write_bytes(b"not a model")
    cluster.start("detect", "detect", FACEPIPE_DET_MODEL=str(broken))
    cluster.start("embed", "embed")
    cluster.start("writer", "writer")
    restarted: list[str] = []

    def heal(store: RunStore) -> None:
        if not restarted and cluster.workers.procs["detect"].poll() is not None:
            assert store.failed() == [], "a chunk was recorded lost instead of requeued"
            restarted.append("detect")
            cluster.start("detect", "detect")  # a healthy worker takes the requeued chunk

    table = identity_table(cluster.run(video, SETTINGS, on_tick=heal))
    assert restarted == ["detect"], "the broken worker did not stop"
    log = (cluster.tmp / "logs" / "detect.log").read_text()
    assert f"{broken} is not a valid ONNX model" in log and "this worker stops" in log
    assert table == clean


def test_malformed_messages_are_rejected_and_workers_survive(
    cluster: Cluster, clean: dict, video: Path
) -> None:
    cluster.start_all()
    app = CelerySender(cluster.server.url).app
    chunk = {"seq": 0, "start": 0, "stop": 2}
    hostile = [
        (DETECT, {"run_id": "../../etc", "prefix": "fp", "chunk": chunk}),
        (DETECT, {"run_id": "run", "prefix": "fp", "chunk": {"seq": "zero", "start": 0, "stop": 2}}),
        (DETECT, {"run_id": "no-such-run", "prefix": "fp", "chunk": chunk}),
        (DETECT, ("run", 0, 0, 2, "fp")),  # the old positional form: five arguments
        (EMBED, {"run_id": "run", "prefix": "fp", "chunk": chunk, "record": "not a record"}),
        (EMBED, {"run_id": "run", "prefix": "fp", "chunk": chunk, "record": {"seq": 0, "evil": 1}}),
        (WRITE, {"run_id": "run", "prefix": "fp", "chunk": {"seq": -1, "start": 0, "stop": 2}}),
        (WRITE, {"run_id": "run", "prefix": "fp; FLUSHALL", "chunk": chunk}),
        (WRITE, "not even an object"),
    ]
    for stage, payload in hostile:
        args = payload if isinstance(payload, tuple) else (payload,)
        app.send_task(stage.task, args=args, connection=app.connection_for_write(cluster.server.url))
    time.sleep(1.0)
    table = identity_table(cluster.run(video, SETTINGS))
    assert all(proc.poll() is None for proc in cluster.workers.procs.values())
    assert table == clean
    logs = "".join(p.read_text() for p in (cluster.tmp / "logs").glob("*.log"))
    assert logs.count("rejected") >= len(hostile)


def test_a_stalled_run_is_reported_not_waited_for(video: Path, tmp_path: Path) -> None:
    """No workers are listening: the CLI says so within the stall timeout, exit 1."""
    srv = EmbeddedServer(tmp_path)
    srv.start()
    try:
        proc = facepipe(
            "run",
            str(video),
            "--broker",
            srv.url,
            "--stall-timeout",
            "3",
            "--no-progress",
            "--out",
            str(tmp_path / "out"),
            timeout=60,
        )
    finally:
        srv.stop()
    assert proc.returncode == 1
    assert "stalled" in proc.stderr and "workers are running" in proc.stderr
    assert proc.elapsed < 20  # type: ignore[attr-defined]


def test_embedded_server_keeps_a_run_across_a_crash(tmp_path: Path) -> None:
    srv = EmbeddedServer(tmp_path)
    srv.start()
    store = RunStore(connect(srv.url), "fp", "persist")
    store.create({"params": {"sim_thresh": 0.27}})
    store.put_chunk(ChunkRecord(seq=0, start=0, stop=2, step=1))
    time.sleep(1.5)  # appendfsync everysec
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    srv.proc = None
    srv.start()
    try:
        again = RunStore(connect(srv.url), "fp", "persist")
        assert again.meta()["params"] == {"sim_thresh": 0.27}
        assert again.progress() == (1, 0)
    finally:
        srv.stop()
