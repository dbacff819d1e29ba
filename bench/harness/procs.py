"""One timed subprocess, and its process tree sampled from ``/proc`` while it runs.

:func:`launch` runs a command to completion and returns its wall time, the rusage of the whole
tree, and what :class:`TreeSampler` saw every 0.1 s: peak RSS and PSS of the tree, per process
role (``cli``, ``valkey``, ``detect worker``, ``detect pool child``, ...) peak RSS and CPU
seconds, and every second each role's RSS and CPU (the memory timeline of ``--episode``). Also
how busy the rest of the machine was meanwhile: the noise indicators of a shared host.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import ROOT

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _stat(pid: int) -> tuple[int, int, int, bytes] | None:
    """(ppid, utime+stime ticks, rss bytes, comm) from /proc/PID/stat, or None if gone."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    end = raw.rfind(b")")
    fields = raw[end + 2 :].split()
    return (
        int(fields[1]),
        int(fields[11]) + int(fields[12]),
        int(fields[21]) * PAGE,
        raw[raw.find(b"(") + 1 : end],
    )


def _pss(pid: int) -> int:
    raw = _read(f"/proc/{pid}/smaps_rollup") or b""
    match = re.search(rb"^Pss:\s+(\d+) kB", raw, re.M)
    return int(match.group(1)) * 1024 if match else 0


def _role(cmd: list[str], parent_role: str | None) -> str:
    text = " ".join(cmd)
    if "valkey-server" in text or "redis-server" in text:
        return "valkey"
    if parent_role and parent_role.endswith(" worker"):  # a prefork pool process
        return parent_role.replace(" worker", " pool child")
    if "celery" in text and "-Q" in cmd:
        return f"{cmd[cmd.index('-Q') + 1]} worker"
    return "other"


@dataclass
class ProcInfo:
    pid: int
    role: str
    cmd: list[str]
    comm: bytes = b""
    peak_rss: int = 0
    cpu_ticks: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0


@dataclass
class TreeSampler:
    """Samples a process tree every ``interval`` s until stopped; optional per-tick hook."""

    root: int
    root_role: str
    interval: float = 0.1
    hook: Any = None
    #: every this many samples, append (s since start, {role: [RSS MB, CPU s so far]}) to ``timeline``
    timeline_every: int = 10
    procs: dict[int, ProcInfo] = field(default_factory=dict)
    peak_total_rss: int = 0
    peak_total_pss: int = 0
    samples: int = 0
    timeline: list[tuple[float, dict[str, list[float]]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _children(self) -> dict[int, list[int]]:
        kids: dict[int, list[int]] = defaultdict(list)
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = _stat(int(name))
                if st is not None:
                    kids[st[0]].append(int(name))
        return kids

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            if self.hook is not None:
                try:
                    self.hook(self)
                except Exception as exc:  # noqa: BLE001 - a probe must never kill the bench
                    print(f"bench: probe error: {exc!r}", file=sys.stderr)
            self._stop.wait(self.interval)

    def sample(self) -> None:
        kids = self._children()
        todo, tree = [self.root], []
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(kids.get(pid, ()))
        total = pss_total = 0
        with_pss = self.samples % 5 == 0
        now = time.time()
        for pid in tree:
            st = _stat(pid)
            if st is None:
                continue
            ppid, ticks, rss, comm = st
            info = self.procs.get(pid)
            # A child seen between fork and exec still shows its parent's command: look again
            # until it has a role, and whenever its name changes (exec).
            if info is None or (pid != self.root and (info.role == "other" or info.comm != comm)):
                cmd = [
                    c.decode(errors="replace")
                    for c in (_read(f"/proc/{pid}/cmdline") or b"").split(b"\0")
                    if c
                ]
                parent = self.procs.get(ppid)
                role = self.root_role if pid == self.root else _role(cmd, parent.role if parent else None)
                if info is None:
                    info = self.procs[pid] = ProcInfo(pid, role, cmd, comm, first_seen=now)
                elif info.comm != comm:  # exec'd: a new program, so start its figures afresh
                    if role != "other" or info.role == "other":
                        info.role, info.cmd = role, cmd
                    info.comm, info.peak_rss = comm, 0
                elif role != "other":
                    info.role, info.cmd = role, cmd
            info.peak_rss = max(info.peak_rss, rss)
            info.cpu_ticks = max(info.cpu_ticks, ticks)
            info.last_seen = now
            total += rss
            if with_pss:
                pss_total += _pss(pid)
        self.peak_total_rss = max(self.peak_total_rss, total)
        self.peak_total_pss = max(self.peak_total_pss, pss_total)
        if self.samples % self.timeline_every == 0:
            self._started = getattr(self, "_started", now)
            roles: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
            alive = set(tree)
            for info in self.procs.values():
                if info.pid in alive and info.last_seen == now:
                    st = _stat(info.pid)
                    if st is not None:
                        roles[info.role][0] += round(st[2] / 2**20, 1)
                        roles[info.role][1] += round(st[1] / TICK, 2)
            self.timeline.append((round(now - self._started, 1), dict(roles)))
        self.samples += 1

    def by_role(self, t0: float) -> dict[str, dict[str, float]]:
        """Per role: processes, peak RSS of one process, CPU s, first/last seen (s from ``t0``)."""
        roles: dict[str, dict[str, float]] = {}
        for info in self.procs.values():
            r = roles.setdefault(
                info.role,
                {"processes": 0, "peak_rss_mb": 0.0, "cpu_s": 0.0, "first_seen_s": 1e9, "last_seen_s": 0.0},
            )
            r["processes"] += 1
            r["peak_rss_mb"] = max(r["peak_rss_mb"], round(info.peak_rss / 2**20, 1))
            r["cpu_s"] = round(r["cpu_s"] + info.cpu_ticks / TICK, 2)
            r["first_seen_s"] = round(min(r["first_seen_s"], info.first_seen - t0), 2)
            r["last_seen_s"] = round(max(r["last_seen_s"], info.last_seen - t0), 2)
        return roles

    def socket_path(self) -> str | None:
        for info in self.procs.values():
            if info.role != "valkey":
                continue
            if "--unixsocket" in info.cmd:
                return info.cmd[info.cmd.index("--unixsocket") + 1]
            try:  # the server retitles itself; it runs in its --dir, beside the socket
                return os.path.join(os.readlink(f"/proc/{info.pid}/cwd"), "redis.sock")
            except OSError:
                return None
        return None


def _busy_ticks() -> int:
    """CPU ticks the whole machine spent busy (all processes, all cores) since boot."""
    fields = [int(x) for x in (_read("/proc/stat") or b"cpu 0").split(b"\n")[0].split()[1:]]
    return sum(fields) - sum(fields[3:5])  # minus idle and iowait


def _cpu_pressure_us() -> int:
    match = re.search(rb"some .*total=(\d+)", _read("/proc/pressure/cpu") or b"")
    return int(match.group(1)) if match else 0


def launch(
    cmd: list[str],
    workdir: Path,
    role: str,
    hook: Any = None,
    env: dict | None = None,
    cwd: str | Path | None = None,
) -> dict[str, Any]:
    """Run ``cmd`` (in ``cwd``, default the repository root) to completion; wall time, rusage of
    the tree, sampled RSS/CPU per role.

    Also how busy the rest of the machine was meanwhile (``other_cores``: CPU the machine
    spent outside this tree, in cores) and the share of time some task waited for a CPU
    (``cpu_pressure``, from /proc/pressure/cpu): the noise indicators of a shared host.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = round(os.getloadavg()[0], 2)
    busy0, pressure0 = _busy_ticks(), _cpu_pressure_us()
    with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        t_launch = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd or ROOT
        )
        sampler = TreeSampler(proc.pid, role, hook=hook).start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    busy = (_busy_ticks() - busy0) / TICK
    pressure = (_cpu_pressure_us() - pressure0) / 1e6
    if proc.returncode != 0:
        tail = (workdir / "stderr.txt").read_text(errors="replace")[-2000:]
        raise SystemExit(f"bench: {' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return {
        "launch_epoch": t_launch,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "cores_used": round((usage.ru_utime + usage.ru_stime) / wall, 2),
        "maxrss_mb_single_process": round(usage.ru_maxrss / 1024, 1),
        "peak_tree_rss_mb": round(sampler.peak_total_rss / 2**20, 1),
        "peak_tree_pss_mb": round(sampler.peak_total_pss / 2**20, 1),
        "roles": sampler.by_role(t_launch),
        "processes": len(sampler.procs),
        "other_cores": round(max(0.0, busy - (usage.ru_utime + usage.ru_stime)) / wall, 2),
        "cpu_pressure": round(pressure / wall, 2),
        "loadavg_before": load_before,
        "timeline": sampler.timeline,
    }
