"""Exactly-once, order-independent identities under real faults.

Real workers are killed with real signals at chosen points (after N chunks; between the
work and the ack), then restarted; messages are delivered twice; a chunk is corrupt;
two writers run at once. Each run's full identity table (embeddings, centroids, refine
counts, counts, every face line) must equal a clean run's, field by field.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facepipe.embedded import EmbeddedServer
from facepipe.records import ChunkRecord
from facepipe.settings import Settings
from facepipe.store import RunStore, connect
from facepipe.video import plan_chunks, probe
from tests.cluster import Cluster, describe, identity_table
from tests.conftest import SHARED, t1_frames, write_video
from tests.helpers import facepipe, reference_models
from tests.reference import sequential_run

HAMILTON = SHARED / "videos" / "hamilton_short.mp4"
if HAMILTON.is_file():
    # The real clip (cuts, profiles, an audience): 46 sampled frames in 23 chunks of 2.
    SETTINGS = Settings(frame_step=6, chunk_size=2, task_retries=1)
else:
    # Without ../shared: 40 frames of six real faces, 20 chunks of 2, ~12 faces a chunk.
    SETTINGS = Settings(frame_step=1, chunk_size=2, task_retries=1)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if HAMILTON.is_file():
        return HAMILTON
    return write_video(tmp_path_factory.mktemp("faults") / "t1-40.mp4", t1_frames(40))


def _chunks(video: Path) -> list:
    return plan_chunks(probe(video).frame_count, SETTINGS.frame_step, SETTINGS.chunk_size)


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


def test_clean_run_equals_the_sequential_reference(clean: dict, video: Path) -> None:
    detector, embedder = reference_models()
    params = {**SETTINGS.run_params(), "det_input": list(SETTINGS.det_input)}
    ref = sequential_run(str(video), params, detector, embedder)
    assert [f["identity"] for f in clean["faces"]] == ref["assignments"]
    assert [i["count"] for i in clean["identities"]] == [i["count"] for i in ref["identities"]]
    assert len(clean["identities"]) == (6 if video.name.startswith("t1") else len(ref["identities"]))
    assert len(clean["identities"]) >= 3


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
    from facepipe.runner import celery_sender

    cluster.start_all()
    send_once = celery_sender(cluster.server.url)

    def send_twice(name: str, args: tuple) -> None:
        send_once(name, args)
        send_once(name, args)

    store = cluster.run(video, SETTINGS, send=send_twice)
    table = identity_table(store)
    print(f"\nevery detect task delivered twice: {describe(table)}")
    assert table == clean
    assert store.stats()["chunks_applied"] == len(_chunks(video))


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
    from facepipe.runner import celery_sender

    cluster.start_all()
    send = celery_sender(cluster.server.url)

    face_frames = {f["frame"] for f in clean["faces"]}
    target = next(c for c in _chunks(video)[1:] if face_frames & set(c.frames()))  # a chunk with faces

    def corrupt_one_chunk(name: str, args: tuple) -> None:
        run_id, seq, start, stop, prefix = args
        if seq != target.seq:
            return send(name, args)
        record = ChunkRecord(seq, start, stop, SETTINGS.frame_step, frames_sampled=2, frames_read=2)
        record.faces = [
            {"frame": start, "index": 0, "bbox": [0, 0, 99, 99], "det_score": 0.9, "aligned": True}
        ]
        record.crops = ["bm90IGFuIGltYWdl"]  # base64 of "not an image"
        send("facepipe.embed", (run_id, seq, prefix, record.to_dict()))

    store = cluster.run(video, SETTINGS, send=corrupt_one_chunk)
    failed = store.failed()
    lost = target
    assert (
        len(failed) == 1 and failed[0]["seq"] == target.seq and failed[0]["frames"] == [lost.start, lost.stop]
    )
    assert "not a 112x112 colour image" in failed[0]["reason"]
    stats = store.stats()
    assert stats["chunks_failed"] == 1 and stats["frames_lost"] == len(lost.frames())
    assert stats["chunks_applied"] == len(_chunks(video)) - 1
    faces = store.faces()
    assert {f["frame"] for f in faces} == face_frames - set(lost.frames()) != face_frames
    print(
        f"\ncorrupt chunk {target.seq}: lost frames {lost.start}-{lost.stop - 1} reported "
        f"({failed[0]['reason']}); {len(faces)} faces kept"
    )


def test_malformed_messages_are_rejected_and_workers_survive(
    cluster: Cluster, clean: dict, video: Path
) -> None:
    from facepipe.runner import celery_sender

    cluster.start_all()
    send = celery_sender(cluster.server.url)
    hostile = [
        ("facepipe.detect", ("../../etc", 0, 0, 2, "fp")),
        ("facepipe.detect", ("run", "zero", 0, 2, "fp")),
        ("facepipe.detect", ("no-such-run", 0, 0, 2, "fp")),
        ("facepipe.embed", ("run", 0, "fp", "not a record")),
        ("facepipe.embed", ("run", 0, "fp", {"seq": 0, "evil": 1})),
        ("facepipe.write", ("run", -1, "fp")),
        ("facepipe.write", ("run", 0, "fp; FLUSHALL")),
    ]
    for name, args in hostile:
        send(name, args)
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
    store.put_chunk(0, ChunkRecord(0, 0, 2, 1).to_dict())
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
