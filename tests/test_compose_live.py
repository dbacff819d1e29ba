"""The compose deployment, built and run for real: a Docker engine, the images, a cluster.

What users run, run here, on one deployment for the whole module: ``scripts/cluster.sh up
--tls`` makes a private CA and a certificate for Redis, builds the images from
``compose/Dockerfile`` (on a base made from Debian's packages and a wheelhouse of ``.venv``'s
packages, since no image registry is reachable here) and starts ``compose/compose.yaml`` with
``compose/tls.yaml``: 2 detect, 1 embed and 1 writer container, Redis with a password, AOF, a
``maxmemory`` and TLS only, and Flower with basic auth. Then, each a test:

1. the stack as deployed: Redis refuses plain connections, clients that do not know the CA,
   and clients without the password; Flower wants its password and lists the four workers;
2. a shared clip is submitted from the host with ``facepipe run VIDEO --broker
   rediss://:PASSWORD@HOST:PORT/0 --tls-ca-certs CA``, and **the Redis container is
   restarted mid-run** (``docker stop``, 3 s, ``docker start``); its ``faces.jsonl`` must
   equal, byte for byte, the embedded run's (``facepipe run VIDEO``, no broker) on the same clip and flags;
3. the same clip is submitted again through the ``cli`` service (``docker compose run --rm cli
   run VIDEO``, over TLS inside the compose network); while the embed container holds a chunk
   it has not stored, the container is ``docker kill``-ed and started again; the chunk must be
   redelivered (FACEPIPE_VISIBILITY_TIMEOUT is 10 s here) and the result be byte-identical,
   nothing lost; Flower's API shows every task of the run;
4. ``scripts/cluster.sh down -v`` leaves no container, network, volume or process.

Without an engine, the module installs and starts one (``scripts/docker-engine.sh``) when it
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from facepipe.distributed.store import RunStore, list_runs
from tests.helpers import ROOT, processes_with, read_run

# One deployment for the module: the tests run in file order, the last one takes it down.
pytestmark = [pytest.mark.shared, pytest.mark.slow, pytest.mark.timeout(900)]

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


# --------------------------------------------------------------------------- the deployment


@dataclass
class Deployment:
    """The module's compose deployment and what the tests share."""

    project: str
    repo: Path
    env: dict[str, str]  # the tests' own environment (no FACEPIPE_*, no COMPOSE_*)
    cluster_env: dict[str, str]
    video: Path
    outputs: Path
    broker: str  # rediss:// on the published port
    ca: Path
    redis_port: int
    redis_password: str
    flower: Flower
    log: Path
    started: float
    engine_started: bool = False
    stack_up: bool = False
    reference: bytes = b""
    ref_summary: dict[str, Any] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def cluster(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        with open(self.log, "a") as log:
            log.write(f"\n$ scripts/cluster.sh {' '.join(args)}\n")
        done = subprocess.run(
            ["bash", "scripts/cluster.sh", *args], cwd=self.repo, env=self.cluster_env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip
        with open(self.log, "a") as log:
            log.write(done.stdout + done.stderr)
        return done

    def compose(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        """compose with the files .env names (COMPOSE_FILE: compose.yaml and tls.yaml)."""
        return subprocess.run(
            [*compose_cli(), *args], cwd=self.repo / "compose", env=self.cluster_env, **kwargs
        )

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.broker, ssl_ca_certs=str(self.ca), socket_timeout=10)

    def container(self, service: str) -> str:
        found = docker(
            "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout.split()  # fmt: skip
        assert len(found) == 1, (service, found)
        return found[0]

    def facepipe(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """The host's ``facepipe`` (a user's laptop), as the README shows it."""
        return subprocess.run(
            [sys.executable, "-m", "facepipe.app.cli", *args], cwd=ROOT,
            env={**self.env, "FACEPIPE_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)},
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


@pytest.fixture(scope="module")
def deployment(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    started = time.monotonic()
    tmp = tmp_path_factory.mktemp("compose-live")
    video = (shared_data / "videos" / VIDEO).resolve()
    assert video.is_file(), video
    project = f"fplive{secrets.token_hex(3)}"
    redis_password = secrets.token_hex(16)
    flower_user, flower_password = "live", secrets.token_hex(8)
    redis_port, flower_port = free_port(), free_port()
    outputs, crops = tmp / "outputs", tmp / "faces"
    outputs.mkdir()
    crops.mkdir()

    # A copy of the repository, so that a developer's own compose/.env and certificates are
    # never touched; its .venv is this interpreter's: the wheelhouse, hence the images, get its
    # packages.
    repo = tmp / "repo"
    repo.mkdir()
    for name in TREE:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", ".env", "*.whl", ".tls")
            shutil.copytree(source, repo / name, ignore=ignore)
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
        "REDIS_MAXMEMORY": "256mb",
    }
    live = Deployment(
        project=project,
        repo=repo,
        env=env,
        cluster_env=cluster_env,
        video=video,
        outputs=outputs,
        broker=f"rediss://:{redis_password}@127.0.0.1:{redis_port}/0",
        ca=repo / "compose" / ".tls" / "redis" / "ca.crt",
        redis_port=redis_port,
        redis_password=redis_password,
        flower=Flower(flower_port, flower_user, flower_password),
        log=tmp / "cluster.log",
        started=started,
    )

    # ---- an engine: the one running, or one installed and started here ----------------
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
        live.engine_started = True
        live.timings["engine install and start"] = time.monotonic() - started

    # The embedded default on the same clip and flags: the reference, run meanwhile.
    embedded_out = tmp / "embedded"
    embedded = subprocess.Popen(
        [sys.executable, "-m", "facepipe.app.cli", "run", str(video), *FLAGS, "--out", str(embedded_out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        phase = time.monotonic()
        live.stack_up = True
        done = live.cluster("up", "--tls")
        assert done.returncode == 0, f"scripts/cluster.sh up --tls failed:\n{done.stderr[-4000:]}"
        live.timings["cluster.sh up --tls (CA, images, stack, healthy)"] = time.monotonic() - phase
        assert f"--broker rediss://:{redis_password}@127.0.0.1:{redis_port}/0" in done.stderr, done.stderr
        assert f"--tls-ca-certs {live.ca}" in done.stderr and live.ca.is_file(), done.stderr

        _, err = embedded.communicate(timeout=300)
        assert embedded.returncode == 0, err[-2000:]
        live.ref_summary, ref_faces = read_run(embedded_out)
        live.reference = (embedded_out / "faces.jsonl").read_bytes()
        assert ref_faces and live.ref_summary["identities"] >= 2, live.ref_summary
        yield live
    finally:
        if embedded.poll() is None:
            embedded.kill()
            embedded.wait()
        if live.stack_up:
            with contextlib.suppress(Exception):
                live.cluster("down", "-v", timeout=300)
        # Earlier builds' worker images go; the base, Redis and current worker images and
        # the build stage's layers (the dependencies) stay as the cache of the next run.
        with contextlib.suppress(Exception):
            docker("image", "prune", "-f", "--filter", "label=org.facepipe.image=worker", check=False)
        if live.engine_started:
            subprocess.run(
                ["bash", "scripts/docker-engine.sh", "stop"], cwd=ROOT, capture_output=True, timeout=180
            )
        shutil.rmtree(repo, ignore_errors=True)
    if live.engine_started:
        assert not engine_answers(), "the engine this module started is still running"
        assert processes_named("dockerd", "containerd", "containerd-shim", "docker-proxy") == []
    assert processes_with(redis_password.encode()) == []


def assert_same_as_embedded(live: Deployment, out: Path) -> dict[str, Any]:
    summary, faces = read_run(out)
    assert (out / "faces.jsonl").read_bytes() == live.reference, f"{out} differs from the embedded run"
    assert summary["counts"] == live.ref_summary["counts"], summary
    assert not summary["failed_chunks"] and summary["frames_lost"] == 0, summary
    assert summary["faces_embedded"] == len(faces), summary
    return summary


# -------------------------------------------------------------------------------- tests


def test_compose_live_stack_as_deployed_with_tls_and_passwords(deployment: Deployment) -> None:
    live = deployment
    running = docker("ps", "--filter", f"label=com.docker.compose.project={live.project}",
                     "--format", "{{.Label \"com.docker.compose.service\"}}").stdout.split()  # fmt: skip
    assert sorted(running) == ["detect", "detect", "embed", "flower", "redis", "writer"], running
    client = live.client()
    assert client.config_get("appendonly") == {"appendonly": "yes"}  # persists (AOF) ...
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}  # ... never evicts ...
    assert client.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}  # ... and has a limit
    assert client.config_get("dir") == {"dir": "/data"}
    assert client.config_get("port") == {"port": "0"} and client.config_get("tls-port") == {
        "tls-port": "6379"
    }
    # Only TLS, only with the CA that signed Redis's certificate, only with the password.
    with pytest.raises(redis.ConnectionError):
        redis.Redis(
            host="127.0.0.1", port=live.redis_port, password=live.redis_password, socket_timeout=10
        ).ping()
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis.from_url(live.broker, socket_timeout=10).ping()  # the system CAs do not know ours
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(
            host="127.0.0.1", port=live.redis_port, ssl=True, ssl_ca_certs=str(live.ca), socket_timeout=10
        ).ping()
    client.close()
    # The CLI says which of these is wrong, in one line.
    plain = live.facepipe("runs", "--broker", live.broker.replace("rediss://", "redis://"), timeout=60)
    assert plain.returncode == 1 and "rediss://" in plain.stderr and "Traceback" not in plain.stderr, (
        plain.stderr
    )
    no_ca = live.facepipe("runs", "--broker", live.broker, timeout=60)
    assert no_ca.returncode == 1 and "FACEPIPE_TLS_CA_CERTS" in no_ca.stderr, no_ca.stderr
    assert live.redis_password not in plain.stderr + no_ca.stderr

    flower = live.flower
    assert poll("Flower to answer", lambda: flower.get("/api/workers")[0] == 200, 60)
    assert flower.get("/api/workers", auth=False)[0] == 401
    assert flower.get("/api/tasks", auth=False)[0] == 401
    workers = poll("Flower to list 2 detect, 1 embed and 1 writer worker", lambda: four_workers(flower), 60)
    assert all(len(qs) == 1 and name.startswith(f"{next(iter(qs))}@") for name, qs in workers.items()), (
        workers
    )


def four_workers(flower: Flower) -> dict[str, set[str]] | None:
    found = flower.workers()
    queues = sorted(q for qs in found.values() for q in qs)
    return found if queues == ["detect", "detect", "embed", "writer"] else None


def test_compose_live_redis_restarted_mid_run_over_tls(deployment: Deployment) -> None:
    """From the host over rediss://; the Redis container stopped at chunk 8 and started 3 s
    later (AOF on): the dispatcher says it waits for it, the workers reconnect, and the result is
    the embedded run's."""
    live = deployment
    phase = time.monotonic()
    out = live.outputs / "run1"
    client = live.client()
    before = set(list_runs(client, PREFIX))
    run = subprocess.Popen(
        [sys.executable, "-m", "facepipe.app.cli", "run", str(live.video), *CLUSTER_FLAGS,
         "--broker", live.broker, "--tls-ca-certs", str(live.ca), "--out", str(out)],
        cwd=ROOT, env={**live.env, "FACEPIPE_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        run_id = poll(
            "run 1 to be created", lambda: next(iter(set(list_runs(client, PREFIX)) - before), None), 120
        )
        store = RunStore(client, PREFIX, run_id)
        poll("run 1's first chunks", lambda: store.next_seq() >= 8, 120, 0.1)
        restarted_at = store.next_seq()
        restart = time.monotonic()
        # `docker restart` with Redis away long enough to be noticed: a bare restart (under a
        # second here) is absorbed by the clients' own quick retries, unseen.
        redis_id = live.container("redis")
        docker("stop", "-t", "10", redis_id, timeout=120)
        time.sleep(3)
        docker("start", redis_id, timeout=120)
        restart_s = time.monotonic() - restart
        _, err = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, err[-3000:]
    assert "lost the broker" in err and "is back after" in err, err[-3000:]
    summary = assert_same_as_embedded(live, out)
    assert restarted_at < summary["chunks"], (restarted_at, summary["chunks"])
    live.run_ids["run1"] = run_id
    live.timings["run 1 (host dispatcher, TLS, Redis restarted)"] = time.monotonic() - phase
    live.report["redis_restart"] = {
        "at_chunk": restarted_at,
        "chunks": summary["chunks"],
        "restart_s": round(restart_s, 1),
    }
    # The workers came back by themselves.
    poll("Flower to list the four workers again", lambda: four_workers(live.flower), 90)
    client.close()


def test_compose_live_embed_container_killed_mid_run(deployment: Deployment) -> None:
    """Through the cli service (TLS inside the compose network); the embed container is killed
    while it holds a chunk it has not stored, and started again: the chunk comes back after the
    visibility timeout, nothing is lost, and Flower shows every task of the run."""
    live = deployment
    phase = time.monotonic()
    out2 = live.outputs / "run2"
    client = live.client()
    before = set(list_runs(client, PREFIX))
    run2 = subprocess.Popen(
        [*compose_cli(), "run", "--rm", "-T", "cli", "run", str(live.video), *CLUSTER_FLAGS,
         "--out", str(out2)],
        cwd=live.repo / "compose", env=live.cluster_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        run2_id = poll(
            "run 2 to be created", lambda: next(iter(set(list_runs(client, PREFIX)) - before), None), 120
        )
        store = RunStore(client, PREFIX, run2_id)
        embed_id = live.container("embed")
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
            time.sleep(0.5)  # what the worker had already sent (a chunk's store) reaches Redis first
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
    finally:
        if run2.poll() is None:
            run2.kill()
            run2.wait()
    assert run2.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    live.timings["run 2 (cli service, embed killed)"] = time.monotonic() - phase
    assert_same_as_embedded(live, out2)
    live.run_ids["run2"] = run2_id
    # The killed worker's chunk was delivered again, to the embed worker started again.
    logs = docker("logs", embed_id)
    embed_log = logs.stdout + logs.stderr  # both lives of the container
    deliveries = embed_log.count(f"facepipe.embed[{held['task_id']}] received")
    assert deliveries >= 2, embed_log[-3000:]
    # Nothing but the redelivery (after the visibility timeout) could have completed it.
    assert held_for >= VISIBILITY_TIMEOUT, held_for

    chunks = store.meta()["chunks"]

    def run_complete() -> dict[str, dict[int, dict]] | None:
        found = live.flower.run_tasks(run2_id)
        complete = all(
            sorted(found[name]) == list(range(chunks))
            and all(t["state"] == "SUCCESS" for t in found[name].values())
            for name in TASKS
        )
        return found if complete else None

    tasks2 = poll("Flower to show every task of run 2 as SUCCESS", run_complete, 60)
    assert tasks2["facepipe.embed"][held["seq"]]["uuid"] == held["task_id"]
    by_worker = {name: {t["worker"] for t in tasks2[name].values()} for name in TASKS}
    assert len(by_worker["facepipe.detect"]) == 2, by_worker  # both detect containers worked
    assert all(w.startswith("detect@") for w in by_worker["facepipe.detect"]), by_worker
    assert [w.split("@")[0] for w in by_worker["facepipe.embed"]] == ["embed"], by_worker
    assert [w.split("@")[0] for w in by_worker["facepipe.write"]] == ["writer"], by_worker
    poll("Flower to list the restarted embed worker", lambda: four_workers(live.flower), 60)
    client.close()
    live.report["kill"] = {
        "chunk": held["seq"],
        "chunks": chunks,
        "pause_tries": attempts,
        "deliveries": deliveries,
        "restarted_after_s": round(restart_seconds, 1),
        "chunk_applied_after_s": round(redelivery_seconds, 1),
        "first_delivery_to_applied_s": round(held_for, 1),
        "visibility_timeout_s": VISIBILITY_TIMEOUT,
    }


def test_compose_live_one_writer_status_and_down_leaves_nothing(deployment: Deployment) -> None:
    live = deployment
    # ---- one writer: the engine refuses a second one --------------------------------
    second = live.compose("up", "-d", "--no-deps", "--no-recreate", "--scale", "writer=2", "writer",
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert second.returncode != 0, second.stderr
    writers = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={live.project}",
                     "--filter", "label=com.docker.compose.service=writer").stdout.split()  # fmt: skip
    assert len(writers) == 1, (writers, second.stderr)

    # ---- status, then down -v: nothing left ------------------------------------------
    done = live.cluster("status", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "4 nodes online" in done.stdout, done.stdout
    assert all(run_id in done.stdout for run_id in live.run_ids.values()), (live.run_ids, done.stdout)

    phase = time.monotonic()
    done = live.cluster("down", "-v", timeout=300)
    assert done.returncode == 0, done.stderr
    live.stack_up = False
    live.timings["cluster.sh down -v"] = time.monotonic() - phase
    label = f"label=com.docker.compose.project={live.project}"
    assert docker("ps", "-aq", "--filter", label).stdout.split() == []
    assert docker("ps", "-aq", "--filter", f"name={live.project}").stdout.split() == []
    assert docker("network", "ls", "-q", "--filter", label).stdout.split() == []
    assert docker("network", "ls", "-q", "--filter", f"name={live.project}").stdout.split() == []
    assert docker("volume", "ls", "-q", "--filter", label).stdout.split() == []
    assert docker("volume", "ls", "-q", "--filter", f"name={live.project}").stdout.split() == []
    assert processes_with(live.redis_password.encode()) == []

    live.timings["total"] = time.monotonic() - live.started
    report = {
        **live.report,
        "faces": live.reference.count(b"\n"),
        "identities": live.ref_summary["identities"],
        "timings_s": {k: round(v, 1) for k, v in live.timings.items()},
    }
    print("compose_live:", json.dumps(report))
