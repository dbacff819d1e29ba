"""The dispatcher and the broker under faults: a Redis restart, a killed dispatcher, an outage
longer than the stall timeout, retention, a full Redis and a full disk.

One real fleet for the module: a valkey-server on a loopback TCP port with append-only
persistence (as compose runs Redis), and one real detect, embed and writer worker. Every run
is ``facepipe run VIDEO --broker URL`` in its own process, as a user starts it; each one's
``faces.jsonl`` must equal, byte for byte, the clean run's on the same fleet. The server is
stopped and started again for real (SIGTERM, then the same port and data folder), the
dispatcher is SIGKILLed by the test hook ``FACEPIPE_FAULT_INJECT=dispatch:N``, and the disk
that fills up is a real 48 KB tmpfs (root only; skipped otherwise).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from facepipe.distributed.embedded import EmbeddedServer
from facepipe.distributed.store import KEPT, RunStore, connect, list_runs
from tests.cluster import FAST_RECOVERY, RestartableWorkers
from tests.conftest import SHARED, t1_frames, write_video
from tests.helpers import ROOT, facepipe, processes_with

HAMILTON = SHARED / "videos" / "hamilton_short.mp4"
# Frame-range chunks, as in tests/test_faults.py: 23 chunks of 2 sampled frames on the real clip
# (40 frames of six real faces in 20 chunks without ../shared), enough to stop things mid-run.
FLAGS = ("--frame-step", "6" if HAMILTON.is_file() else "1", "--chunk-size", "2", "--decoder", "opencv")
PREFIX = "facepipe"
KEEP_HOURS = "0.002"  # 7.2 s: the clean run's bulky keys expire during the module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Fleet:
    server: EmbeddedServer
    workers: RestartableWorkers
    tmp: Path

    @property
    def url(self) -> str:
        return self.server.tcp_url

    def client(self) -> redis.Redis:
        return connect(self.url)

    def restart_server(self, down_s: float) -> None:
        """Stop Redis as ``docker restart`` does (SIGTERM: it writes its AOF), wait, start it again
        on the same port with the same data."""
        self.server.stop()
        time.sleep(down_s)
        self.server.start()

    def workers_alive(self) -> bool:
        return all(proc.poll() is None for proc in self.workers.procs.values())


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if HAMILTON.is_file():
        return HAMILTON
    return write_video(tmp_path_factory.mktemp("broker") / "t1-40.mp4", t1_frames(40))


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    tmp = Path(tempfile.mkdtemp(prefix="fp-broker-"))
    server = EmbeddedServer(tmp, port=free_port())
    server.start()
    workers = RestartableWorkers(server.tcp_url, ROOT, tmp / "logs", "broker")
    try:
        for queue in ("detect", "embed", "writer"):
            workers.start_one(queue, queue, 1, dict(FAST_RECOVERY))
        yield Fleet(server, workers, tmp)
    finally:
        try:
            workers.stop()
        finally:
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)


def run_args(video: Path, fleet: Fleet, out: Path, *extra: str) -> list[str]:
    return ["run", str(video), *FLAGS, "--no-progress", "--broker", fleet.url, "--out", str(out), *extra]


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``facepipe ARGS`` in the background, as a user's dispatcher."""
    return subprocess.Popen(
        [sys.executable, "-m", "facepipe.app.cli", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def dispatcher(*args: str) -> Iterator[subprocess.Popen]:
    """``facepipe ARGS`` in the background (:func:`start`); killed and reaped if the test ends
    while it still runs."""
    proc = start(*args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def ends_like_clean(proc: subprocess.Popen, fleet: Fleet, clean: dict, out: Path) -> str:
    """Wait for the dispatcher: it exits 0, its ``faces.jsonl`` is the clean run's byte for
    byte and every worker is alive. Returns what it said on stderr."""
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert (out / "faces.jsonl").read_bytes() == clean["faces"]
    assert fleet.workers_alive()
    return err


def new_run(client: redis.Redis, before: set[str], timeout: float = 60) -> RunStore:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        created = set(list_runs(client, PREFIX)) - before
        if created:
            return RunStore(client, PREFIX, created.pop())
        time.sleep(0.05)
    raise AssertionError("the run was not created")


def wait_for(what: str, check, timeout: float = 90, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def one_line_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("facepipe: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


@pytest.fixture(scope="module")
def clean(fleet: Fleet, video: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The run with nothing going wrong: the reference, and the retention test's run."""
    out = tmp_path_factory.mktemp("clean")
    before = set(list_runs(fleet.client(), PREFIX))
    proc = facepipe(*run_args(video, fleet, out, "--keep-hours", KEEP_HOURS), timeout=240)
    assert proc.returncode == 0, proc.stderr
    store = new_run(fleet.client(), before)
    faces = (out / "faces.jsonl").read_bytes()
    assert faces.count(b"\n") >= 20, faces
    ttl = {
        name: store.r.pttl(store.key(name)) for name in ("faces", "face_emb", "thumbnails", "meta", "next")
    }
    return {"faces": faces, "run_id": store.run_id, "out": out, "ttl": ttl, "chunks": store.meta()["chunks"]}


def test_a_broker_restart_mid_run_is_ridden_out(
    fleet: Fleet, clean: dict, video: Path, tmp_path: Path
) -> None:
    """Redis stops (its AOF written) and comes back 3 s later on the same port: the dispatcher
    waits for it, says so, and the run ends with the clean run's faces; no worker died."""
    client = fleet.client()
    before = set(list_runs(client, PREFIX))
    with dispatcher(*run_args(video, fleet, tmp_path / "out")) as proc:
        store = new_run(client, before)
        wait_for("the first chunks", lambda: store.next_seq() >= 3)
        # Meanwhile (the writer held, so that the run cannot finish before the restart): the
        # run is followed, a second dispatcher is refused, and Redis restarts under the
        # dispatcher and the detect and embed workers, the writer waking to it afterwards.
        writer = fleet.workers.procs["writer"].pid
        os.killpg(writer, signal.SIGSTOP)
        try:
            listed = facepipe("runs", "--broker", fleet.url, timeout=60)
            second = facepipe("resume", store.run_id, "--broker", fleet.url, "--no-progress", timeout=60)
            applied_before = store.next_seq()
            fleet.restart_server(down_s=3)
        finally:
            os.killpg(writer, signal.SIGCONT)
        line = next(x for x in listed.stdout.splitlines() if x.startswith(store.run_id))
        assert " running " in line and "dispatcher " in line and "KB" in line, listed.stdout
        assert second.returncode == 1 and "followed by another dispatcher" in one_line_error(second.stderr)
        assert applied_before < clean["chunks"], "the run finished before the restart"
        err = ends_like_clean(proc, fleet, clean, tmp_path / "out")
    assert "lost the broker" in err and "waiting for it" in err and "is back after" in err, err
    print(f"\nRedis restarted at chunk {applied_before} of {clean['chunks']}: identical faces.jsonl")


def test_chunks_a_restarted_broker_came_back_without_are_sent_again(
    fleet: Fleet, clean: dict, video: Path, tmp_path: Path
) -> None:
    """Redis restarts and comes back without the queued detect messages (what happens to a message
    a worker takes just as the connection drops: Celery's Redis transport records the delivery
    after taking it from the queue). Nothing moves; the dispatcher sends those chunks again by
    itself, and the run ends with the clean run's faces."""
    client = fleet.client()
    before = set(list_runs(client, PREFIX))
    detect = fleet.workers.procs["detect"].pid
    with dispatcher(*run_args(video, fleet, tmp_path / "out")) as proc:
        store = new_run(client, before)
        wait_for("the first chunks", lambda: store.next_seq() >= 3)
        os.killpg(detect, signal.SIGSTOP)  # the detect queue fills meanwhile
        try:
            wait_for("queued detect messages", lambda: client.llen("detect") > 0)
            fleet.restart_server(down_s=1)
            client = fleet.client()
            lost = client.llen("detect")
            client.delete("detect")  # this test's own fleet: the messages the broker came back without
        finally:
            os.killpg(detect, signal.SIGCONT)
        err = ends_like_clean(proc, fleet, clean, tmp_path / "out")
    assert lost > 0 and "chunks again whose messages it may have lost" in err, (lost, err)


def test_a_message_a_killed_worker_took_is_sent_again_when_the_run_stops_moving(
    fleet: Fleet, clean: dict, video: Path, tmp_path: Path
) -> None:
    """Celery's Redis transport takes a message from its queue before it records the delivery:
    a worker killed in between loses it, and no visibility timeout brings it back. Here the
    oldest queued embed message vanishes as it would; once nothing moves for --resend-after,
    the dispatcher sends the chunk the writer waits for again, and the run ends with the clean
    run's faces (the detect and embed of that chunk simply run again)."""
    client = fleet.client()
    before = set(list_runs(client, PREFIX))
    embed = fleet.workers.procs["embed"].pid
    with dispatcher(*run_args(video, fleet, tmp_path / "out", "--resend-after", "3")) as proc:
        store = new_run(client, before)
        wait_for("the first chunks", lambda: store.next_seq() >= 2)
        os.killpg(embed, signal.SIGSTOP)  # the embed queue fills meanwhile
        try:
            wait_for("a queued embed message", lambda: client.llen("embed") > 0)
            taken = client.rpop("embed")  # the next one a worker would take; it dies with it
        finally:
            os.killpg(embed, signal.SIGCONT)
        err = ends_like_clean(proc, fleet, clean, tmp_path / "out")
    assert taken is not None and "sent again the 1 chunk(s) the writer waits for" in err, err
    assert store.sent() == clean["chunks"]  # sending one chunk again does not unsend the rest


def test_a_killed_dispatcher_is_resumed_to_the_same_outputs(
    fleet: Fleet, clean: dict, video: Path, tmp_path: Path
) -> None:
    """The dispatcher is SIGKILLed after sending 8 chunks: the run shows as orphaned, and
    ``facepipe resume`` sends the rest, waits, and writes the outputs where the run said."""
    client = fleet.client()
    before = set(list_runs(client, PREFIX))
    out = tmp_path / "out"
    killed = facepipe(*run_args(video, fleet, out), env={"FACEPIPE_FAULT_INJECT": "dispatch:8"}, timeout=120)
    assert killed.returncode == -9, killed.stderr
    store = new_run(client, before)
    assert store.sent() == 8 and not (out / "summary.json").exists()
    listed = facepipe("runs", "--broker", fleet.url, timeout=60)
    assert f"{store.run_id}  orphaned" in listed.stdout and "facepipe resume RUN_ID" in listed.stdout
    status = facepipe("status", store.run_id, "--broker", fleet.url, timeout=60)
    assert f"no dispatcher follows it: 'facepipe resume {store.run_id}'" in status.stdout, status.stdout

    resumed = facepipe("resume", store.run_id, "--broker", fleet.url, "--no-progress", timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    never = clean["chunks"] - 8
    assert f"({never} never sent)" in resumed.stderr, resumed.stderr
    assert (out / "faces.jsonl").read_bytes() == clean["faces"]
    assert (
        (out / "summary.json").is_file() and (out / "bank.npz").is_file() and (out / "report.html").is_file()
    )
    listed = facepipe("runs", "--broker", fleet.url, timeout=60)
    assert f"{store.run_id}  done" in listed.stdout, listed.stdout
    assert processes_with(f"FACEPIPE_TEST_TAG={killed.tag}".encode()) == []  # type: ignore[attr-defined]


def test_a_killed_season_dispatcher_is_resumed_season_and_all(
    fleet: Fleet, clean: dict, video: Path, tmp_path: Path
) -> None:
    """A season of two episodes (the clip twice), its dispatcher killed after 10 chunks: resuming
    either run resumes both, writes each episode's outputs and the series pass."""
    client = fleet.client()
    before = set(list_runs(client, PREFIX))
    out = tmp_path / "season"
    args = ["run", str(video), str(video), *FLAGS, "--no-progress", "--broker", fleet.url, "--out", str(out)]
    killed = facepipe(*args, env={"FACEPIPE_FAULT_INJECT": "dispatch:10"}, timeout=120)
    assert killed.returncode == -9, killed.stderr
    runs = sorted(set(list_runs(client, PREFIX)) - before)
    assert len(runs) == 2, runs
    resumed = facepipe("resume", runs[-1], "--broker", fleet.url, "--no-progress", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "episode 1/2" in resumed.stderr and "episode 2/2" in resumed.stderr, resumed.stderr
    for name in (video.stem, f"{video.stem}-2"):
        assert (out / name / "faces.jsonl").read_bytes() == clean["faces"], name
    assert (out / "series" / "summary.json").is_file() and (out / "series" / "bank.npz").is_file()


def test_an_outage_longer_than_the_stall_timeout_says_how_to_resume(
    fleet: Fleet, clean: dict, video: Path, tmp_path: Path
) -> None:
    """Redis stays away longer than --stall-timeout: the dispatcher stops in one line that names
    the resume command; once Redis is back, the resumed run has the clean run's faces."""
    client = fleet.client()
    before = set(list_runs(client, PREFIX))
    proc = start(*run_args(video, fleet, tmp_path / "out", "--stall-timeout", "4"))
    try:
        store = new_run(client, before)
        wait_for("the first chunks", lambda: store.next_seq() >= 3)
        fleet.server.stop()
        stopped = time.monotonic()
        _, err = proc.communicate(timeout=60)
        gave_up_after = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if fleet.server.proc is None:
            fleet.server.start()
    assert proc.returncode == 1, err
    error = one_line_error(err)
    assert "has not answered" in error and f"'facepipe resume {store.run_id}' finishes it" in error, error
    assert gave_up_after < 30, gave_up_after
    resumed = facepipe("resume", store.run_id, "--broker", fleet.url, "--no-progress", timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "out" / "faces.jsonl").read_bytes() == clean["faces"]
    assert fleet.workers_alive()


def test_a_full_broker_is_refused_or_waited_for_never_a_dead_fleet(
    fleet: Fleet, clean: dict, video: Path, tmp_path: Path
) -> None:
    """Redis with a ``maxmemory`` (noeviction), filled by 20 MB of this test's own keys.

    * A run that cannot fit is refused before anything starts, in one line naming the remedy.
    * A run that fills Redis mid-run: the workers stop taking chunks (none is lost, none dies),
      the dispatcher says what to do and waits; once memory is freed the run carries on, and
      ends with the clean run's faces.
    """
    client = fleet.client()
    ballast = [f"fptest:ballast:{i}" for i in range(40)]
    try:
        for key in ballast:
            client.set(key, b"x" * 500_000)
        time.sleep(1)  # the server's input buffers shrink back
        used = client.info("memory")["used_memory"]
        client.config_set("maxmemory", int((used + 50_000) / 0.9))  # 50 KB for runs; ~2.5 MB for queues
        before = set(list_runs(client, PREFIX))
        refused = facepipe(*run_args(video, fleet, tmp_path / "refused"), timeout=120)
        assert refused.returncode == 1
        error = one_line_error(refused.stderr)
        assert (
            "MB free for runs" in error
            and "facepipe delete RUN_ID" in error
            and "nothing was started" in error
        )
        assert set(list_runs(client, PREFIX)) == before

        client.config_set("maxmemory", 0)
        with dispatcher(*run_args(video, fleet, tmp_path / "out")) as proc:
            store = new_run(client, before)
            wait_for("the first chunks", lambda: store.next_seq() >= 3)
            used = client.info("memory")["used_memory"]
            client.config_set("maxmemory", int(used / 0.9))  # full for runs now; ~2.3 MB left to queues
            last, still_since = store.next_seq(), time.monotonic()
            while time.monotonic() - still_since < 4:  # until nothing moves for 4 s
                time.sleep(0.2)
                if store.next_seq() != last:
                    last, still_since = store.next_seq(), time.monotonic()
            paused_at = store.next_seq()
            assert paused_at < clean["chunks"], "the run finished before Redis was full"
            assert fleet.workers_alive() and proc.poll() is None
            assert int(client.info("errorstats").get("errorstat_OOM", {}).get("count", 0)) == 0
            client.config_set("maxmemory", 0)  # the remedy
            err = ends_like_clean(proc, fleet, clean, tmp_path / "out")
        assert "is full" in err and "the workers wait for memory" in err and "has room again" in err, err
        print(f"\nRedis full at chunk {paused_at} of {clean['chunks']}: paused, then identical faces.jsonl")
    finally:
        client.config_set("maxmemory", 0)
        client.delete(*ballast)


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_leaves_no_summary_and_the_outputs_come_from_redis(
    fleet: Fleet, clean: dict, video: Path, tiny_disk: Path, tmp_path: Path
) -> None:
    """--out fills up while the outputs are written: one line says so and how to get them; no
    summary.json (written last) and no partial file is left; ``facepipe report RUN --broker``
    writes them from Redis."""
    client = fleet.client()
    before = set(list_runs(client, PREFIX))
    proc = facepipe(*run_args(video, fleet, tiny_disk), timeout=240)
    assert proc.returncode == 1
    error = one_line_error(proc.stderr)
    store = new_run(client, before)
    assert f"cannot write the outputs of run {store.run_id} to {tiny_disk}" in error, error
    assert "No space left on device" in error and "no summary.json was written" in error
    assert f"'facepipe report {store.run_id} --broker URL --out DIR'" in error
    left = sorted(p.name for p in tiny_disk.iterdir())
    assert "summary.json" not in left and not [n for n in left if "partial" in n], left
    again = facepipe(
        "report", store.run_id, "--broker", fleet.url, "--out", str(tmp_path / "again"), timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "faces.jsonl").read_bytes() == clean["faces"]


def test_a_finished_runs_bulky_keys_expire_and_a_small_record_stays(fleet: Fleet, clean: dict) -> None:
    """The clean run kept its faces, embeddings and thumbnails for --keep-hours 0.002 (7.2 s)
    after its outputs were written; then only its record is left, and the commands say so."""
    ttl = clean["ttl"]
    assert all(0 < ttl[name] <= 7200 for name in ("faces", "face_emb", "thumbnails")), ttl
    assert ttl["meta"] == ttl["next"] == -1, ttl  # the record never expires
    store = RunStore(fleet.client(), PREFIX, clean["run_id"])
    wait_for(
        "the bulky keys to expire", lambda: not store.r.exists(store.key("faces")), timeout=30, interval=0.2
    )
    left = sorted(k.decode().rsplit(":", 1)[1] for k in store.r.scan_iter(match=f"{store.base}:*"))
    assert set(left) <= set(KEPT) and "meta" in left, left
    size = sum(store.r.memory_usage(store.key(name)) or 0 for name in left)
    assert size < 8_000, size
    listed = facepipe("runs", "--broker", fleet.url, timeout=60)
    line = next(x for x in listed.stdout.splitlines() if x.startswith(store.run_id))
    assert " expired " in line and re.search(r" \d+ B |\d\.\d KB ", line), line  # a record: 2 KB or less
    report = facepipe("report", store.run_id, "--broker", fleet.url, timeout=60)
    assert report.returncode == 1 and "faces expired" in one_line_error(report.stderr)
    deleted = facepipe("delete", store.run_id, "--broker", fleet.url, timeout=60)
    assert deleted.returncode == 0 and not list(store.r.scan_iter(match=f"{store.base}:*"))
    assert store.run_id not in list_runs(store.r, PREFIX)
