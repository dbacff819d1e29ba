"""Flower watches a real run: workers per queue, task events and the broker's queue view.

A fresh server, real workers for the three queues, a real Flower with basic auth, and a
real ``facepipe run --broker``; everything is then checked through Flower's HTTP API.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from facepipe.distributed.embedded import EmbeddedServer, EmbeddedWorkers
from facepipe.distributed.stages import QUEUES, STAGES
from tests.helpers import ROOT, facepipe, read_run

USER, PASSWORD = "user", "pw"
TASKS = ("facepipe.detect", "facepipe.embed", "facepipe.write")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Flower:
    """A ``celery flower`` process on 127.0.0.1 with basic auth, in its own process group."""

    def __init__(self, broker_url: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "tasks",
                    "flower",
                    f"--port={self.port}",
                    "--address=127.0.0.1",
                    f"--basic-auth={USER}:{PASSWORD}",
                ],  # fmt: skip
                cwd=ROOT,
                env={**os.environ, "FACEPIPE_BROKER_URL": broker_url},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def get(self, path: str, auth: bool = True, timeout: float = 10) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path)
        if auth:
            token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def poll(what: str, check: Callable[[], Any], deadline: float, flower: Flower) -> Any:
    """Call ``check`` until it returns something truthy, or fail with Flower's log at ``deadline``."""
    last: Any = None
    while time.monotonic() < deadline:
        if flower.proc.poll() is not None:
            pytest.fail(f"flower exited with {flower.proc.returncode}: {flower.tail()}")
        try:
            last = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}\nflower log:\n{flower.tail()}")


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[tuple[EmbeddedServer, EmbeddedWorkers, Flower]]:
    """A fresh TCP server (Flower's broker view reads queue lengths from it), workers, Flower."""
    workdir = Path(tempfile.mkdtemp(prefix="fp-flower-"))
    server = EmbeddedServer(workdir, port=free_port(), password="flowerpw")
    workers = EmbeddedWorkers(server.tcp_url, ROOT, tmp_path / "logs", "flower")
    flower: Flower | None = None
    try:
        server.start()
        # One worker per queue, each loading only its own stage's model, as fleet workers started
        # with ``celery worker -Q detect`` (or embed, writer) do: every chunk then shows all three
        # tasks in Flower. (The embedded default's model workers also embed what they detect,
        # and send no embed task; tests/test_distributed.py runs that shape.)
        for stage in STAGES:
            env = {"FACEPIPE_ORT_THREADS": "1", "FACEPIPE_PRELOAD": stage.model or ""}
            workers.start_one(stage.queue, stage.queue, 1, env)
        flower = Flower(server.tcp_url, tmp_path / "flower.log")
        yield server, workers, flower
    finally:
        try:
            if flower is not None:
                flower.stop()
            workers.stop()
        finally:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def worker_queues(workers: dict[str, Any]) -> dict[str, set[str]]:
    return {
        name: {q["name"] for q in info.get("active_queues") or []}
        for name, info in (workers or {}).items()
        if name.endswith(f"-flower@{socket.gethostname()}")
    }


@pytest.mark.timeout(120)
def test_flower_shows_workers_tasks_and_queues(stack, t1_video: Path, tmp_path: Path) -> None:
    server, _, flower = stack
    started = time.monotonic()
    deadline = started + 45

    # Flower is up and guarded by basic auth.
    poll("flower to answer", lambda: flower.get("/api/workers")[0] == 200, deadline, flower)
    assert flower.get("/api/workers", auth=False)[0] == 401
    assert flower.get("/api/tasks", auth=False)[0] == 401
    assert flower.get("/api/queues/length", auth=False)[0] == 401

    # Workers for each queue, as Flower sees them (an inspect broadcast through the broker).
    def consuming() -> dict[str, set[str]] | None:
        status, listed = flower.get("/api/workers?refresh=1")
        found = worker_queues(listed) if status == 200 else {}
        return found if {q for qs in found.values() for q in qs} >= set(QUEUES) else None

    queues_by_worker = poll("workers consuming detect, embed and writer", consuming, deadline, flower)
    assert sorted(queues_by_worker.values(), key=sorted) == [{"detect"}, {"embed"}, {"writer"}]
    for queue in QUEUES:
        assert f"{queue}-flower@{socket.gethostname()}" in queues_by_worker

    # A real run through those workers; the video's two GOPs of 12 frames hold 3 sampled frames
    # each, so keyframe chunks of about 2 sampled frames are the 2 GOPs (seq 0, 1).
    out = tmp_path / "out"
    proc = facepipe(
        "run", str(t1_video), "--broker", server.tcp_url, "--frame-step", "4", "--chunk-size", "2",
        "--no-progress", "--out", str(out), timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"facepipe: run (\S+):", proc.stderr)
    assert match, proc.stderr
    run_id = match.group(1)
    summary, faces = read_run(out)
    assert summary["run_id"] == run_id
    assert faces, "the run found no faces"
    chunks = summary["chunks"]
    assert chunks == 2, summary

    # Every task of the run, as Flower's event capture recorded it (it may lag a few seconds).
    def run_tasks() -> dict[str, list[dict]] | None:
        status, listed = flower.get("/api/tasks")
        if status != 200:
            return None
        mine: dict[str, list[dict]] = {name: [] for name in TASKS}
        for task in listed.values():
            if task.get("name") in mine and run_id in str(task.get("args")):
                mine[task["name"]].append(task)
        complete = all(
            len(mine[name]) == chunks and all(t["state"] == "SUCCESS" for t in mine[name]) for name in TASKS
        )
        return mine if complete else None

    mine = poll("SUCCESS events of detect, embed and write tasks", run_tasks, deadline, flower)
    for name, tasks in mine.items():
        seqs = set()
        for task in tasks:
            assert task["state"] == "SUCCESS"
            # args is Celery's repr of the one message: ({'run_id': ..., 'prefix': ...,
            # 'chunk': {'seq': ...}, ...},) for every stage.
            args = re.search(r"'run_id': '([^']+)', 'prefix': '[^']*', 'chunk': \{'seq': (\d+)", task["args"])
            assert args, task["args"]
            assert args.group(1) == run_id
            seqs.add(int(args.group(2)))
            queue = {"facepipe.detect": "detect-", "facepipe.embed": "embed-"}.get(name, "writer-")
            assert task["worker"].startswith(queue), (name, task["worker"])
        assert seqs == set(range(len(tasks))), (name, sorted(seqs))

    # Flower's broker view: the three queues, drained after the run.
    status, lengths = flower.get("/api/queues/length")
    assert status == 200, flower.tail()
    by_name = {q["name"]: q["messages"] for q in lengths["active_queues"]}
    assert set(QUEUES) <= set(by_name), lengths
    assert all(by_name[q] == 0 for q in QUEUES), lengths
    assert time.monotonic() - started < 60
