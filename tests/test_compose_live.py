"""The compose deployment, built and run for real: a Docker engine, the images, a cluster.

What users run, run here: ``scripts/cluster.sh up`` builds the images from
``compose/Dockerfile`` (on a base made from Debian's packages and a wheelhouse of
``.venv``'s packages, since no image registry is reachable here) and starts
``compose/compose.yaml`` with 2 detect, 1 embed and 1 writer container, Redis with a
password and AOF, and Flower with basic auth. Then:

1. a shared clip is submitted from the host with ``facepipe run VIDEO --broker
   redis://:PASSWORD@HOST:PORT/0``; its ``faces.jsonl`` must equal, byte for byte, the
   embedded run's (``facepipe run VIDEO``, no broker) on the same clip and flags;
2. the same clip is submitted again through the ``cli`` service (``docker compose run
   --rm cli run VIDEO``); while the embed container holds a chunk it has not stored, the
   container is ``docker kill``-ed and started again; the chunk must be redelivered
   (FACEPIPE_VISIBILITY_TIMEOUT is 10 s here) and the result be byte-identical, nothing lost;
3. Flower's API lists the four workers and every task of the runs;
4. ``scripts/cluster.sh down -v`` leaves no container, network, volume or process.

Without an engine, the test installs and starts one (``scripts/docker-engine.sh``) when it
runs as root on a Debian host, and stops it at the end; otherwise it skips with the reason.
The base image (by tag) and the wheelhouse (``~/.cache/facepipe/docker``) stay cached.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from facepipe.distributed.store import RunStore, list_runs
from tests.helpers import ROOT, processes_with, read_run

pytestmark = [pytest.mark.shared, pytest.mark.slow]

VIDEO = "hamilton_short.mp4"
# 46 chunks of 2 sampled frames: long enough to kill the embed container mid-run. The seed's
# frame-range chunks (--decoder opencv), because the clip has too few keyframes for that many
# keyframe chunks; the embedded reference decodes with the default (PyAV), and the pixels, so
# the faces, are the same.
FLAGS = ("--frame-step", "3", "--chunk-size", "2", "--no-progress")
CLUSTER_FLAGS = (*FLAGS, "--decoder", "opencv")
VISIBILITY_TIMEOUT = 10  # seconds; the deployment default is 900
PREFIX = "facepipe"
TASKS = ("facepipe.detect", "facepipe.embed", "facepipe.write")
# What the test copies of the repository: everything the images and scripts are made of.
TREE = (
    "pyproject.toml",
    "README.md",
    "celeryconfig.py",
    ".dockerignore",
    "facepipe",
    "tasks",
    "compose",
    "scripts",
)
# A Lua script run inside Redis: the delivery tags of embed messages a worker has taken
# and not acknowledged (kombu keeps them in the hash "unacked" as [message, exchange, queue]).
UNACKED_EMBED = """
local found = {}
for _, tag in ipairs(redis.call('HKEYS', KEYS[1])) do
  local value = redis.call('HGET', KEYS[1], tag)
  if value and string.sub(value, -8) == '"embed"]' then table.insert(found, tag) end
end
return found
"""


# ---------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done


def compose_cli() -> list[str]:
    """``docker compose`` (v2) or ``docker-compose`` (v1.29), as scripts/cluster.sh picks it."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    standalone = shutil.which("docker-compose")
    assert standalone, "scripts/cluster.sh up ran, yet there is no compose"
    return [standalone]


def processes_named(*names: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in names:
            found.append(f"{entry.name} {comm}")
    return found


class Flower:
    """Flower's HTTP API, as a user reaches it (published port, basic auth)."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = base64.b64encode(f"{user}:{password}".encode()).decode()

    def get(self, path: str, auth: bool = True) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path)
        if auth:
            request.add_header("Authorization", f"Basic {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def workers(self) -> dict[str, set[str]]:
        status, listed = self.get("/api/workers?refresh=1")
        if status != 200 or not listed:
            return {}
        return {name: {q["name"] for q in info.get("active_queues") or []} for name, info in listed.items()}

    def run_tasks(self, run_id: str) -> dict[str, dict[int, dict]]:
        """The run's tasks Flower recorded: task name -> chunk seq -> task."""
        status, listed = self.get("/api/tasks")
        found: dict[str, dict[int, dict]] = {name: {} for name in TASKS}
        for task in (listed or {}).values() if status == 200 else ():
            # Celery's repr of the task's one message: ({'run_id': ..., 'prefix': ..., 'chunk': {'seq': ...
            args = re.search(
                r"'run_id': '([^']+)', 'prefix': '[^']*', 'chunk': \{'seq': (\d+)", str(task.get("args"))
            )
            if task.get("name") in found and args and args.group(1) == run_id:
                found[task["name"]][int(args.group(2))] = task
        return found


def poll(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, redis.RedisError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


# -------------------------------------------------------------------------------- test


@pytest.mark.timeout(1200)
def test_compose_live_cluster_kill_restart_and_flower(shared_data: Path, tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()

    video = (shared_data / "videos" / VIDEO).resolve()
    assert video.is_file(), video
    project = f"fplive{secrets.token_hex(3)}"
    redis_password = secrets.token_hex(16)
    flower_user, flower_password = "live", secrets.token_hex(8)
    redis_port, flower_port = free_port(), free_port()
    outputs, crops = tmp_path / "outputs", tmp_path / "faces"
    outputs.mkdir()
    crops.mkdir()

    # A copy of the repository, so that a developer's own compose/.env is never touched;
    # its .venv is this interpreter's: the wheelhouse, hence the images, get its packages.
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in TREE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, repo / name, ignore=shutil.ignore_patterns("__pycache__", ".env", "*.whl")
            )
        else:
            shutil.copy2(source, repo / name)
    (repo / ".venv").symlink_to(Path(sys.prefix))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEPIPE_", "COMPOSE_"))}
    cluster_env = {
        **env,
        "FACEPIPE_LOCAL_IMAGES": "1",  # same packages as .venv: the results must match bit for bit
        "COMPOSE_PROJECT_NAME": project,
        "REDIS_PASSWORD": redis_password,
        "FLOWER_USER": flower_user,
        "FLOWER_PASSWORD": flower_password,
        "REDIS_HOST_PORT": f"127.0.0.1:{redis_port}",
        "FLOWER_HOST_PORT": f"127.0.0.1:{flower_port}",
        "VIDEO_DIR": str(video.parent),
        "OUTPUT_DIR": str(outputs),
        "CROPS_DIR": str(crops),
        "DETECT_SCALE": "2",
        "EMBED_SCALE": "1",
        "DETECT_CONCURRENCY": "1",
        "EMBED_CONCURRENCY": "1",
        "FACEPIPE_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "FACEPIPE_RESTORE_INTERVAL": "1",
    }
    broker = f"redis://:{redis_password}@127.0.0.1:{redis_port}/0"
    cluster_log = tmp_path / "cluster.log"

    def cluster(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        with open(cluster_log, "a") as log:
            log.write(f"\n$ scripts/cluster.sh {' '.join(args)}\n")
        done = subprocess.run(
            ["bash", "scripts/cluster.sh", *args], cwd=repo, env=cluster_env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        with open(cluster_log, "a") as log:
            log.write(done.stdout + done.stderr)
        return done

    def compose(*args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*compose_cli(), "-f", "compose.yaml", *args], cwd=repo / "compose", env=cluster_env, **kwargs
        )

    # ---- an engine: the one running, or one installed and started here ----------------
    engine_started = False
    if not engine_answers():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("no Docker engine answers, and installing one needs root and apt-get (Debian)")
        done = subprocess.run(
            ["bash", "scripts/docker-engine.sh", "start"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.skip(f"no Docker engine can run here: {done.stderr.strip()[-1500:]}")
        engine_started = True
        timings["engine install and start"] = time.monotonic() - started

    # The embedded default on the same clip and flags: the reference, run meanwhile.
    embedded_out = tmp_path / "embedded"
    embedded = subprocess.Popen(
        [sys.executable, "-m", "facepipe.app.cli", "run", str(video), *FLAGS, "--out", str(embedded_out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run2: subprocess.Popen | None = None
    stack_up = False
    try:
        # ---- build and start: the user's one command ------------------------------------
        phase = time.monotonic()
        stack_up = True
        done = cluster("up")
        assert done.returncode == 0, f"scripts/cluster.sh up failed:\n{done.stderr[-4000:]}"
        timings["cluster.sh up (images, stack, healthy)"] = time.monotonic() - phase
        assert "--broker redis://:" in done.stderr and f"127.0.0.1:{redis_port}" in done.stderr, done.stderr

        out, err = embedded.communicate(timeout=300)
        assert embedded.returncode == 0, err[-2000:]
        ref_summary, ref_faces = read_run(embedded_out)
        reference = (embedded_out / "faces.jsonl").read_bytes()
        assert ref_faces and ref_summary["identities"] >= 2, ref_summary

        # ---- the stack as deployed: 2 detect, 1 embed, 1 writer, Redis, Flower ----------
        running = docker("ps", "--filter", f"label=com.docker.compose.project={project}",
                         "--format", "{{.Label \"com.docker.compose.service\"}}").stdout.split()  # fmt: skip
        assert sorted(running) == ["detect", "detect", "embed", "flower", "redis", "writer"], running
        client = redis.Redis.from_url(broker, socket_timeout=10)
        with pytest.raises(redis.AuthenticationError):  # a password is required ...
            redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=10).ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}  # ... and it persists (AOF)
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("dir") == {"dir": "/data"}

        flower = Flower(flower_port, flower_user, flower_password)
        assert poll("Flower to answer", lambda: flower.get("/api/workers")[0] == 200, 60)
        assert flower.get("/api/workers", auth=False)[0] == 401
        assert flower.get("/api/tasks", auth=False)[0] == 401

        def four_workers() -> dict[str, set[str]] | None:
            found = flower.workers()
            queues = sorted(q for qs in found.values() for q in qs)
            return found if queues == ["detect", "detect", "embed", "writer"] else None

        workers = poll("Flower to list 2 detect, 1 embed and 1 writer worker", four_workers, 60)
        assert all(len(qs) == 1 and name.startswith(f"{next(iter(qs))}@") for name, qs in workers.items()), (
            workers
        )

        # ---- run 1: submitted from the host, as the README shows ------------------------
        phase = time.monotonic()
        out1 = outputs / "run1"
        done = subprocess.run(
            [sys.executable, "-m", "facepipe.app.cli", "run", str(video), *CLUSTER_FLAGS,
             "--broker", broker, "--out", str(out1)],
            cwd=ROOT, env={**env, "FACEPIPE_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        timings["run 1 (host dispatcher)"] = time.monotonic() - phase
        run1_id = re.search(r"facepipe: run (\S+):", done.stderr).group(1)
        summary1, _ = read_run(out1)
        assert (out1 / "faces.jsonl").read_bytes() == reference, "compose run differs from the embedded run"
        assert summary1["counts"] == ref_summary["counts"] and not summary1["failed_chunks"], summary1
        chunks = summary1["chunks"]
        assert chunks >= 20, summary1

        def run_complete(run_id: str) -> dict[str, dict[int, dict]] | None:
            found = flower.run_tasks(run_id)
            complete = all(
                sorted(found[name]) == list(range(chunks))
                and all(t["state"] == "SUCCESS" for t in found[name].values())
                for name in TASKS
            )
            return found if complete else None

        tasks1 = poll("Flower to show every task of run 1 as SUCCESS", lambda: run_complete(run1_id), 60)
        by_worker = {name: {t["worker"] for t in tasks1[name].values()} for name in TASKS}
        assert len(by_worker["facepipe.detect"]) == 2, by_worker  # both detect containers worked
        assert all(w.startswith("detect@") for w in by_worker["facepipe.detect"]), by_worker
        assert [w.split("@")[0] for w in by_worker["facepipe.embed"]] == ["embed"], by_worker
        assert [w.split("@")[0] for w in by_worker["facepipe.write"]] == ["writer"], by_worker

        # ---- run 2: through the cli service; the embed container killed mid-run ---------
        phase = time.monotonic()
        out2 = outputs / "run2"
        before = set(list_runs(client, PREFIX))
        run2 = subprocess.Popen(
            [*compose_cli(), "-f", "compose.yaml", "run", "--rm", "-T", "cli", "run", str(video),
             *CLUSTER_FLAGS, "--out", str(out2)],
            cwd=repo / "compose", env=cluster_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        run2_id = poll(
            "run 2 to be created", lambda: next(iter(set(list_runs(client, PREFIX)) - before), None), 120
        )
        store = RunStore(client, PREFIX, run2_id)
        embed_container = docker(
            "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
            "--filter", "label=com.docker.compose.service=embed",
        ).stdout.split()  # fmt: skip
        assert len(embed_container) == 1, embed_container
        embed_id = embed_container[0]
        unacked_embed = client.register_script(UNACKED_EMBED)

        # Catch the embed worker holding a chunk it has not stored: pause its container
        # (the freezer stops it acknowledging) and check; if it finished in between,
        # unpause and try the next chunk.
        held: dict[str, Any] | None = None
        attempts = 0
        deadline = time.monotonic() + 120
        while held is None and time.monotonic() < deadline and run2.poll() is None:
            if store.next_seq() < 2:
                time.sleep(0.02)
                continue
            tags = unacked_embed(keys=["unacked"])
            if not tags:
                time.sleep(0.005)
                continue
            attempts += 1
            docker("pause", embed_id)
            for tag in tags:
                raw = client.hget("unacked", tag)
                if raw is None:
                    continue
                message = json.loads(raw)[0]
                payload = json.loads(base64.b64decode(message["body"]))[0][0]  # the task's one message
                run_id, seq = payload["run_id"], payload["chunk"]["seq"]
                if run_id == run2_id and not client.sismember(store.key("embedded"), seq):
                    held = {
                        "tag": tag,
                        "seq": seq,
                        "task_id": message["headers"]["id"],
                        # When the worker took it, by its clock (this host's clock).
                        "delivered_at": client.zscore("unacked_index", tag),
                    }
                    break
            if held is None:
                docker("unpause", embed_id)
        assert held is not None, f"never caught the embed worker holding a chunk ({attempts} tries)"
        docker("kill", embed_id)
        killed_at = time.monotonic()
        next_at_kill = store.next_seq()
        assert next_at_kill <= held["seq"], (next_at_kill, held)
        assert client.hexists("unacked", held["tag"]), "the killed worker's message is not pending"
        assert docker("inspect", "-f", "{{.State.Status}}", embed_id).stdout.strip() == "exited"
        time.sleep(1)
        assert docker("inspect", "-f", "{{.State.Status}}", embed_id).stdout.strip() == "exited"
        docker("start", embed_id)
        restart_seconds = time.monotonic() - killed_at

        poll(f"chunk {held['seq']} to be applied", lambda: store.next_seq() > held["seq"], 120, 0.1)
        redelivery_seconds = time.monotonic() - killed_at
        held_for = time.time() - held["delivered_at"]  # from its first delivery to its chunk applied
        out, err = run2.communicate(timeout=300)
        assert run2.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
        timings["run 2 (cli service, embed killed)"] = time.monotonic() - phase
        summary2, faces2 = read_run(out2)
        assert (out2 / "faces.jsonl").read_bytes() == reference, "the run with a killed embed worker differs"
        assert summary2["counts"] == ref_summary["counts"], summary2
        assert not summary2["failed_chunks"] and summary2["frames_lost"] == 0, summary2
        assert summary2["faces_embedded"] == len(faces2) == len(ref_faces), summary2
        # The killed worker's chunk was delivered again, to the embed worker started again.
        logs = docker("logs", embed_id)
        embed_log = logs.stdout + logs.stderr  # both lives of the container
        deliveries = embed_log.count(f"facepipe.embed[{held['task_id']}] received")
        assert deliveries >= 2, embed_log[-3000:]
        # Nothing but the redelivery (after the visibility timeout) could have completed it.
        assert held_for >= VISIBILITY_TIMEOUT, held_for

        tasks2 = poll("Flower to show every task of run 2 as SUCCESS", lambda: run_complete(run2_id), 60)
        assert tasks2["facepipe.embed"][held["seq"]]["uuid"] == held["task_id"]
        poll("Flower to list the restarted embed worker", four_workers, 60)

        # ---- one writer: the engine refuses a second one --------------------------------
        second = compose("up", "-d", "--no-deps", "--no-recreate", "--scale", "writer=2", "writer",
                         capture_output=True, text=True, timeout=120)  # fmt: skip
        assert second.returncode != 0, second.stderr
        writers = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}",
                         "--filter", "label=com.docker.compose.service=writer").stdout.split()  # fmt: skip
        assert len(writers) == 1, (writers, second.stderr)

        # ---- status, then down -v: nothing left ------------------------------------------
        done = cluster("status", timeout=120)
        assert done.returncode == 0, done.stderr
        assert "4 nodes online" in done.stdout and run1_id in done.stdout and run2_id in done.stdout, (
            done.stdout
        )
        client.close()

        phase = time.monotonic()
        done = cluster("down", "-v", timeout=300)
        assert done.returncode == 0, done.stderr
        stack_up = False
        timings["cluster.sh down -v"] = time.monotonic() - phase
        label = f"label=com.docker.compose.project={project}"
        assert docker("ps", "-aq", "--filter", label).stdout.split() == []
        assert docker("ps", "-aq", "--filter", f"name={project}").stdout.split() == []
        assert docker("network", "ls", "-q", "--filter", label).stdout.split() == []
        assert docker("network", "ls", "-q", "--filter", f"name={project}").stdout.split() == []
        assert docker("volume", "ls", "-q", "--filter", label).stdout.split() == []
        assert docker("volume", "ls", "-q", "--filter", f"name={project}").stdout.split() == []
        assert processes_with(redis_password.encode()) == []
    finally:
        for proc in (embedded, run2):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if stack_up:
            with contextlib.suppress(Exception):
                cluster("down", "-v", timeout=300)
        # Earlier builds' worker images go; the base, Redis and current worker images and
        # the build stage's layers (the dependencies) stay as the cache of the next run.
        with contextlib.suppress(Exception):
            docker("image", "prune", "-f", "--filter", "label=org.facepipe.image=worker", check=False)
        if engine_started:
            subprocess.run(
                ["bash", "scripts/docker-engine.sh", "stop"], cwd=ROOT, capture_output=True, timeout=180
            )
        shutil.rmtree(repo, ignore_errors=True)

    if engine_started:
        assert not engine_answers(), "the engine this test started is still running"
        assert processes_named("dockerd", "containerd", "containerd-shim", "docker-proxy") == []
    assert processes_with(redis_password.encode()) == []

    timings["total"] = time.monotonic() - started
    report = {
        "kill": {
            "chunk": held["seq"],
            "chunks": chunks,
            "pause_tries": attempts,
            "deliveries": deliveries,
            "restarted_after_s": round(restart_seconds, 1),
            "chunk_applied_after_s": round(redelivery_seconds, 1),
            "first_delivery_to_applied_s": round(held_for, 1),
            "visibility_timeout_s": VISIBILITY_TIMEOUT,
        },
        "faces": len(ref_faces),
        "identities": ref_summary["identities"],
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    print("compose_live:", json.dumps(report))
