"""Several hosts on one machine: Linux network namespaces joined by a private bridge.

Topology (all of it inside namespaces this test creates; the root namespace gets nothing):

    <p>-sw   : a bridge ``br0`` and one veth end per host (the switch)
    <p>-redis: valkey-server on 10.250.X.1:6379, password required
    <p>-det  : ``celery worker -Q detect``  (10.250.X.2)
    <p>-emb  : ``celery worker -Q embed``   (10.250.X.3)
    <p>-wri  : ``celery worker -Q writer -c 1`` (10.250.X.4)
    <p>-cli  : ``facepipe run --broker redis://:PW@10.250.X.1:6379/0`` (10.250.X.5)

The run must decide exactly what an embedded run of the same video decides. Needs root
and ``ip netns``; skips (saying why) where they are missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facepipe.distributed.bridge import worker_command
from facepipe.distributed.embedded import server_binary
from tests.helpers import ROOT, assert_consistent, facepipe, read_run

HOSTS = {"redis": 1, "det": 2, "emb": 3, "wri": 4, "cli": 5}  # namespace suffix -> last address octet
WORKERS = {"det": ("detect", 1), "emb": ("embed", 1), "wri": ("writer", 1)}
FLAGS = ("--no-progress", "--frame-step", "2")


def _die_with_parent() -> None:  # between fork and exec: a SIGKILLed pytest leaves no orphans
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


class NetLab:
    """Namespaces, a bridge, veth pairs and the processes started in them; ``close`` undoes all."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.prefix = "fp" + secrets.token_hex(3)
        self.subnet = f"10.250.{secrets.randbelow(254) + 1}"
        self.password = secrets.token_hex(12)
        self.switch = f"{self.prefix}-sw"
        self.created: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.services: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def addr(self, host: str) -> str:
        return f"{self.subnet}.{HOSTS[host]}"

    @property
    def broker(self) -> str:
        return f"redis://:{self.password}@{self.addr('redis')}:6379/0"

    def add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self.created.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def build(self) -> None:
        self.add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for host in HOSTS:
            ns = self.ns(host)
            self.add_namespace(ns)
            # Both ends are created inside the switch namespace; one moves straight to the host.
            peer = ("peer", "name", "eth0", "netns", ns)
            _ip("-n", self.switch, "link", "add", f"p-{host}", "type", "veth", *peer)
            _ip("-n", self.switch, "link", "set", f"p-{host}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.addr(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def exec_argv(self, host: str, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        return ["ip", "netns", "exec", self.ns(host), "env", *extra, *argv]

    def start(self, name: str, host: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.tmp / f"{name}.log"
        self.logs[name] = log
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                self.exec_argv(host, argv, env),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.procs.append(proc)
        self.services[name] = proc

    def run_in(self, host: str, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        proc = subprocess.Popen(
            self.exec_argv(host, argv),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.procs.append(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"timed out in {host}: {argv}\n{out}\n{err}\n{self.tails()}") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def python_in(self, host: str, code: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.run_in(host, [sys.executable, "-c", code], timeout)

    def tails(self) -> str:
        return "\n".join(
            f"--- {name}:\n{path.read_text(errors='replace')[-1500:]}"
            for name, path in self.logs.items()
            if path.exists()
        )

    def check_alive(self) -> None:
        for name, proc in self.services.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}\n{self.tails()}")

    def close(self) -> None:
        """Kill everything started (by process group, then by namespace), delete every namespace."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.procs.clear()
        self.services.clear()
        for ns in reversed(self.created):
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            for _ in range(50):  # a process killed a moment ago may still hold the namespace
                if _ip("netns", "pids", ns, check=False).stdout.strip() == "":
                    break
                time.sleep(0.1)
            _ip("netns", "del", ns, check=False)  # takes its veth ends and the bridge with it
        self.created.clear()


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return f"needs root to create network namespaces (running as uid {os.geteuid()})"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    probe = "fpprobe" + secrets.token_hex(3)
    proc = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"'ip netns add' failed: {proc.stderr.strip() or proc.returncode}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture()
def netlab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NetLab]:
    reason = _netns_unavailable()
    if reason:
        print(f"skipping the multi-host test: {reason}")
        pytest.skip(reason)
    lab = NetLab(tmp_path)
    request.addfinalizer(lab.close)  # runs even if building the lab or the test fails
    lab.build()
    yield lab
    lab.close()


@pytest.mark.timeout(150)
def test_workers_in_separate_namespaces_match_the_embedded_run(
    netlab: NetLab, t1_video: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    lab = netlab

    # Reference: the embedded default in the root namespace, same video and flags.
    ref_out = tmp_path / "embedded"
    ref = facepipe("run", str(t1_video), *FLAGS, "--out", str(ref_out), timeout=60)
    assert ref.returncode == 0, ref.stderr
    ref_summary, ref_faces = read_run(ref_out)

    # The broker host: listens only on its veth address, password required.
    data = tmp_path / "redis-data"
    data.mkdir()
    lab.start(
        "valkey",
        "redis",
        [
            server_binary(),
            "--port", "6379", "--bind", lab.addr("redis"), "--requirepass", lab.password,
            "--protected-mode", "no", "--appendonly", "yes", "--save", "", "--dir", str(data),
            "--daemonize", "no",
        ],
    )  # fmt: skip
    wait_ping = (
        "import redis, time, sys\n"
        f"r = redis.Redis.from_url({lab.broker!r}, socket_timeout=1, socket_connect_timeout=1)\n"
        "deadline = time.monotonic() + 15\n"
        "while time.monotonic() < deadline:\n"
        "    try:\n"
        "        r.ping(); sys.exit(0)\n"
        "    except redis.RedisError:\n"
        "        time.sleep(0.1)\n"
        "sys.exit(1)\n"
    )
    assert lab.python_in("cli", wait_ping).returncode == 0, f"broker not reachable from cli\n{lab.tails()}"

    # One worker host per queue.
    env = {"FACEPIPE_BROKER_URL": lab.broker, "FACEPIPE_ORT_THREADS": "1"}
    for host, (queue, procs) in WORKERS.items():
        lab.start(host, host, worker_command(queue, procs, f"{host}@{lab.prefix}"), env)

    # The dispatcher host: reaches the broker over the bridge only.
    cli_out = tmp_path / "multihost"
    run = lab.run_in(
        "cli",
        [sys.executable, "-m", "facepipe.app.cli", "run", str(t1_video), "--broker", lab.broker,
         "--out", str(cli_out), *FLAGS],
        timeout=60,
    )  # fmt: skip
    shown = lab.broker.replace(lab.password, "***")
    print(f"\n--- multi-host run: facepipe run in namespace {lab.ns('cli')} -> {shown}")
    print(run.stderr.strip())
    print(run.stdout.rstrip())
    assert run.returncode == 0, f"{run.stderr}\n{lab.tails()}"
    lab.check_alive()

    # Same decisions as the embedded run: identity column, counts, totals.
    summary, faces = read_run(cli_out)
    assert_consistent(summary, faces)
    assert summary["failed_chunks"] == []
    assert [f["frame"] for f in faces] == [f["frame"] for f in ref_faces]
    assert [f["identity"] for f in faces] == [f["identity"] for f in ref_faces]
    assert summary["counts"] == ref_summary["counts"]
    for key in ("frames_sampled", "faces_detected", "faces_embedded", "identities"):
        assert summary[key] == ref_summary[key], key
    # The embedded default splits this two-GOP clip so each of its processes has work; remote
    # workers get whole GOPs. The plans differ, the results do not.
    assert summary["chunks"] <= ref_summary["chunks"]
    assert summary["identities"] == 6

    # Isolation. Every host's only route is the private subnet; nothing leads out.
    for host in HOSTS:
        routes = _ip("-n", lab.ns(host), "route").stdout.strip().splitlines()
        assert routes == [f"{lab.subnet}.0/24 dev eth0 proto kernel scope link src {lab.addr(host)}"], routes
        assert _ip("-n", lab.ns(host), "route", "get", "1.1.1.1", check=False).returncode != 0
    # The broker address in the URL is the redis host's veth address, and it listens there only.
    redis_eth0 = _ip("-n", lab.ns("redis"), "-o", "addr", "show", "dev", "eth0").stdout
    assert f"inet {lab.addr('redis')}/24" in redis_eth0 and f"@{lab.addr('redis')}:6379/" in lab.broker
    listening = lab.run_in("redis", ["ss", "-Hltn"]).stdout.split()
    assert f"{lab.addr('redis')}:6379" in listening and "127.0.0.1:6379" not in listening, listening
    # The cli host's loopback is its own: nothing on 127.0.0.1:6379 there.
    probe_local = (
        "import socket\ns = socket.socket(); s.settimeout(2)\nprint(s.connect_ex(('127.0.0.1', 6379)))\n"
    )
    assert lab.python_in("cli", probe_local).stdout.strip() != "0"
    # The broker's clients are the worker hosts and this query from the cli host, each from its
    # own veth address, and nobody else.
    client_list = (
        "import redis\n"
        f"r = redis.Redis.from_url({lab.broker!r}, socket_timeout=2)\n"
        "print(json.dumps(sorted({c['addr'].rsplit(':', 1)[0] for c in r.client_list()})))\n"
    )
    clients = set(json.loads(lab.python_in("cli", "import json\n" + client_list).stdout))
    assert clients == {lab.addr(host) for host in ("det", "emb", "wri", "cli")}, clients
    # The root namespace gained no interface or address.
    assert lab.subnet + "." not in _ip("-o", "addr").stdout
    assert lab.prefix not in _ip("-o", "link").stdout
    print(f"isolation: routes only {lab.subnet}.0/24; broker clients {sorted(clients)}")
    assert time.monotonic() - started < 90
