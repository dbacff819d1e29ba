"""Baseline (A) against ``facepipe run`` configurations, alternated A B1 B2 ... per round.

    python bench/run.py [--pairs 3] [--video PATH] [--frame-step 15]
                        [--contender [NAME[@REV]=]FLAGS ...] [--reference NAME=FLAGS ...]
                        [--contender-env K=V] [--baseline-args "--threads 1"]
                        [--sim-thresh 0.27] [--refine-limit 30] [--no-snapshot]
                        [--no-stage-run] [--no-sizes] [--results FILE]
    python bench/run.py --episode --video LONG.mp4 --contender NAME=FLAGS ... [--episode-baseline]

Both sides get the seed's clustering (``--sim-thresh``/``--refine-limit`` passed explicitly;
facepipe also ``--clustering seed`` where it has it, else ``--merge-thresh 0`` where it has that),
and run from a copy of ``facepipe/``,
``tasks/`` and ``celeryconfig.py`` taken at start (or a git revision's, ``NAME@REV=``), so
edits made meanwhile do not mix in.

Each run is a fresh subprocess timed from launch to exit (imports, model loads, worker
start and stop included). While it runs, a sampler thread reads /proc every 0.1 s for
the whole process tree (peak RSS per process and role, CPU seconds per role, and every
second RSS and CPU per role for the memory-over-time view) and, for facepipe, polls the
run's embedded server for milestones (first chunk embedded, first face applied, last chunk
applied). After the rounds:

* the ``--reference`` runs (untimed), which every contender's faces are compared with;
* one extra, untimed run of the first contender with Redis ``MONITOR`` attached recovers
  the bytes of every task message and the writer's time per chunk;
* ``facepipe.pipeline.detect_chunk`` / ``embed_record`` run in this process on a sample
  of chunks to size a chunk record before and after embedding.

Prints markdown tables and writes bench/results.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import make_video  # noqa: E402  (bench/ sibling)

DEFAULT_CONTENDER = "--num-det 2 --num-emb 1"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------
# /proc sampling of a process tree
# ---------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------
# Milestones of a facepipe run, polled from its embedded server
# ---------------------------------------------------------------------------------------
class Milestones:
    """Epoch times at which the run reached each stage (polled every sampler tick)."""

    def __init__(self) -> None:
        self.client = None
        self.base: str | None = None
        self.times: dict[str, float] = {}

    def __call__(self, sampler: TreeSampler) -> None:
        import redis

        if self.client is None:
            path = sampler.socket_path()
            if path is None or not os.path.exists(path):
                return
            self.client = redis.Redis(unix_socket_path=path, socket_timeout=1)
        try:
            if self.base is None:
                runs = self.client.keys("*:runs")
                if not runs:
                    return
                run_id = self.client.zrange(runs[0], 0, 0)[0].decode()
                self.base = f"{runs[0].decode().removesuffix(':runs')}:run:{run_id}"
                self.times.setdefault("run_created", time.time())
            pipe = self.client.pipeline(transaction=False)
            pipe.scard(f"{self.base}:embedded")
            pipe.hget(f"{self.base}:stats", "faces_detected")
            pipe.get(f"{self.base}:next")
            pipe.hget(f"{self.base}:meta", "chunks")
            embedded, faces, applied, chunks = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return  # the server is shutting down
        now = time.time()
        if embedded:
            self.times.setdefault("first_chunk_embedded", now)
        if faces and int(faces):
            self.times.setdefault("first_face_applied", now)
        if chunks and applied and int(applied) >= int(chunks):
            self.times.setdefault("all_chunks_applied", now)


# ---------------------------------------------------------------------------------------
# MONITOR: stage timings, message bytes and writer time of one instrumented run
# ---------------------------------------------------------------------------------------
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESC = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}


def _unescape(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        s = m.group(1)
        return chr(int(s[1:], 16)) if s[0] == "x" and len(s) == 3 else _SIMPLE.get(s, s)

    return _ESC.sub(sub, text)


def _key_class(key: str) -> str:
    key = re.sub(r":run:[^:]+", ":run:ID", key)
    return re.sub(r"\d+", "N", key)


class CommandLog:
    """Reads MONITOR from the run's server in a thread; keeps only what the bench needs."""

    def __init__(self) -> None:
        self.chunks: dict[int, dict[str, Any]] = {}
        self.pushes: dict[str, list[int]] = defaultdict(list)
        self.bytes_by: dict[str, int] = defaultdict(int)
        self.writer: dict[int, dict[str, float]] = defaultdict(dict)
        self.first_detect_push: float | None = None
        self._pending_get: int | None = None
        self._thread: threading.Thread | None = None
        self.lines = 0

    def attach(self, sampler: TreeSampler) -> None:
        if self._thread is not None:
            return
        path = sampler.socket_path()
        if path is None or not os.path.exists(path):
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(b"MONITOR\r\n")
        self._thread = threading.Thread(target=self._read, args=(sock,), daemon=True)
        self._thread.start()

    def join(self, timeout: float = 10) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _read(self, sock: socket.socket) -> None:
        with sock, sock.makefile("rb") as fh:
            for raw in fh:
                if raw.startswith(b"+") and raw[1:2].isdigit():
                    self._line(raw[1:].rstrip(b"\r\n").decode("latin-1"))
                    self.lines += 1

    def _line(self, line: str) -> None:
        stamp, _, rest = line.partition(" ")
        rest = rest[rest.find("] ") + 2 :]
        args = _ARG.findall(rest)
        if not args:
            return
        t = float(stamp)
        cmd = args[0].upper()
        key = _unescape(args[1]) if len(args) > 1 else ""
        size = sum(len(a) for a in args)  # escaped length: close to the bytes on the wire
        self.bytes_by[f"{cmd} {_key_class(key)}"] += size
        if cmd == "LPUSH" and key.split("\x06")[0] in ("detect", "embed", "writer"):
            queue = key.split("\x06")[0]
            self.pushes[queue].append(len(_unescape(args[2])))
            if queue == "detect" and self.first_detect_push is None:
                self.first_detect_push = t
        elif cmd == "SET" and re.search(r":chunk:\d+$", key):
            seq = int(key.rsplit(":", 1)[1])
            value = _unescape(args[2])
            record = json.loads(value)
            self.chunks[seq] = {
                "stored_at": t,
                "bytes": len(value),
                "faces": len(record["faces"]),
                "frames_sampled": record["frames_sampled"],
                "frames_read": record["frames_read"],
                "timings": record["timings"],
            }
        elif cmd == "GET" and re.search(r":chunk:\d+$", key):
            self._pending_get = int(key.rsplit(":", 1)[1])
            self._get_time = t
        elif cmd == "MULTI" and self._pending_get is not None:
            self.writer[self._pending_get].update(got=self._get_time, multi=t)
        elif cmd == "EXEC" and self._pending_get is not None:
            self.writer[self._pending_get]["exec"] = t
            self._pending_get = None

    def summary(self) -> dict[str, Any]:
        stages: dict[str, float] = defaultdict(float)
        faces = frames = read = 0
        for chunk in self.chunks.values():
            for name, value in chunk["timings"].items():
                stages[name] += value
            faces += chunk["faces"]
            frames += chunk["frames_sampled"]
            read += chunk["frames_read"]
        writer_py = [w["multi"] - w["got"] for w in self.writer.values() if "multi" in w]
        waits = [
            self.writer[s]["exec"] - c["stored_at"]
            for s, c in self.chunks.items()
            if "exec" in self.writer.get(s, {})
        ]
        return {
            "chunks_seen": len(self.chunks),
            "faces": faces,
            "frames_sampled": frames,
            "frames_read": read,
            "stage_sums_s": {k: round(v, 3) for k, v in stages.items()},
            "writer_python_s_total": round(sum(writer_py), 4),
            "writer_python_ms_per_chunk": round(1000 * statistics.mean(writer_py), 3) if writer_py else None,
            "store_to_apply_ms_median": round(1000 * statistics.median(waits), 1) if waits else None,
            "store_to_apply_ms_max": round(1000 * max(waits), 1) if waits else None,
            "message_bytes": {
                q: {"count": len(v), "median": int(statistics.median(v)), "max": max(v), "total": sum(v)}
                for q, v in self.pushes.items()
            },
            "chunk_record_bytes_median": int(statistics.median([c["bytes"] for c in self.chunks.values()]))
            if self.chunks
            else None,
            "bytes_by_command": dict(sorted(self.bytes_by.items(), key=lambda kv: -kv[1])[:12]),
            "monitor_lines": self.lines,
        }


# ---------------------------------------------------------------------------------------
# One timed run
# ---------------------------------------------------------------------------------------
def _busy_ticks() -> int:
    """CPU ticks the whole machine spent busy (all processes, all cores) since boot."""
    fields = [int(x) for x in (_read("/proc/stat") or b"cpu 0").split(b"\n")[0].split()[1:]]
    return sum(fields) - sum(fields[3:5])  # minus idle and iowait


def _cpu_pressure_us() -> int:
    match = re.search(rb"some .*total=(\d+)", _read("/proc/pressure/cpu") or b"")
    return int(match.group(1)) if match else 0


def launch(
    cmd: list[str], workdir: Path, role: str, hook: Any = None, env: dict | None = None
) -> dict[str, Any]:
    """Run ``cmd`` to completion; wall time, rusage of the tree, sampled RSS/CPU per role.

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
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
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


def run_a(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / "baseline.py"), str(args.video), "--frame-step", str(args.frame_step)]
    cmd += ["--sim-thresh", str(args.sim_thresh), "--refine-limit", str(args.refine_limit)]
    cmd += shlex.split(args.baseline_args)
    result = launch(cmd, workdir, "baseline", env=code_env(args))
    out = json.loads((workdir / "stdout.txt").read_text())
    result.update(
        frames_sampled=out["frames_sampled"],
        frames_read=out["frames_read"],
        faces=out["faces"],
        identities=out["identities"],
        counts=out["counts"],
        stage_s=out["timings"],
        stage_cpu_s=out.get("cpu_timings"),
        first_face_s=round(out["first_face_epoch"] - result["launch_epoch"], 2)
        if out["first_face_epoch"]
        else None,
    )
    (workdir / "columns.json").write_text(
        json.dumps(
            {
                "frames": out["face_frames"],
                "identities": out["face_identities"],
                "bboxes": out.get("face_bboxes"),
            }
        )
    )
    return result


@dataclass
class Contender:
    """One ``facepipe run`` configuration: a name, its flags, and the code it runs.

    ``rev`` (a git revision) runs that commit's facepipe/, tasks/ and celeryconfig.py (from
    ``git archive``) instead of the working tree's snapshot: "today's settings" can be today's
    code with its own defaults.
    """

    name: str
    flags: list[str]
    rev: str | None = None
    code_dir: str | None = None
    merge_off: bool = False
    seed_mode: bool = False

    @classmethod
    def parse(cls, text: str, default_name: str = "B") -> Contender:
        """``NAME[@REV]=FLAGS``, or just ``FLAGS`` (named ``default_name``)."""
        match = re.match(r"^([A-Za-z][\w.-]*)(?:@([\w.~^/-]+))?=(.*)$", text, re.S)
        if not match:
            return cls(default_name, shlex.split(text))
        return cls(match.group(1), shlex.split(match.group(3)), match.group(2))

    def describe(self) -> str:
        rev = f" (code of git {self.rev})" if self.rev else ""
        return f"{self.name}: facepipe run {shlex.join(self.flags) or '(defaults)'}{rev}"


def facepipe_cmd(args: argparse.Namespace, out: Path, contender: Contender | None = None) -> list[str]:
    exe = Path(sys.executable).with_name("facepipe")
    cmd = [str(exe) if exe.exists() else "facepipe", "run", str(args.video)]
    cmd += ["--frame-step", str(args.frame_step), "--out", str(out)]
    cmd += ["--sim-thresh", str(args.sim_thresh), "--refine-limit", str(args.refine_limit)]
    if contender is not None and contender.seed_mode:
        cmd += ["--clustering", "seed"]  # the seed's algorithm exactly, as in A
    elif contender is not None and contender.merge_off:
        cmd += ["--merge-thresh", "0"]  # no post-run merge: the seed's algorithm, as in A
    return cmd + (contender.flags if contender is not None else [])


def code_env(args: argparse.Namespace, contender: Contender | None = None) -> dict[str, str]:
    """The environment of A and B: the code snapshot (or the contender's git revision) first on
    PYTHONPATH."""
    env = {**os.environ}
    code = (contender.code_dir if contender is not None else None) or getattr(args, "code_dir", None)
    if code:
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _git(*argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def snapshot_code(workdir: Path) -> dict[str, Any]:
    """Copy facepipe/, tasks/ and celeryconfig.py so that edits made to the working tree
    while the bench runs cannot mix code versions between runs; record the git state."""
    import shutil

    code = workdir / "code"
    for name in ("facepipe", "tasks"):
        shutil.copytree(ROOT / name, code / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "celeryconfig.py", code / "celeryconfig.py")
    dirty = [line[3:] for line in _git("status", "--porcelain").splitlines()]
    return {
        "dir": str(code),
        "git_head": _git("rev-parse", "HEAD"),
        "uncommitted": [p for p in dirty if p.startswith(("facepipe/", "tasks/", "celeryconfig"))],
    }


def checkout_rev(workdir: Path, rev: str) -> str:
    """facepipe/, tasks/ and celeryconfig.py of git revision ``rev``, unpacked under ``workdir``."""
    import io
    import tarfile

    code = workdir / f"code-{rev.replace('/', '_')}"
    archive = subprocess.run(
        ["git", "archive", rev, "facepipe", "tasks", "celeryconfig.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(code, filter="data")
    return str(code)


def contender_env(args: argparse.Namespace, contender: Contender | None = None) -> dict[str, str]:
    env = code_env(args, contender)
    env.pop("FACEPIPE_PROGRESS", None)
    for item in args.contender_env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def run_b(
    args: argparse.Namespace,
    workdir: Path,
    monitor: CommandLog | None = None,
    contender: Contender | None = None,
) -> dict[str, Any]:
    milestones = Milestones()

    def hook(sampler: TreeSampler) -> None:
        if monitor is not None:
            monitor.attach(sampler)
        milestones(sampler)

    contender = contender or args.contenders[0]
    result = launch(
        facepipe_cmd(args, workdir / "out", contender),
        workdir,
        "cli",
        hook=hook,
        env=contender_env(args, contender),
    )
    summary = json.loads((workdir / "out" / "summary.json").read_text())
    t0 = result["launch_epoch"]
    result.update(
        frames_sampled=summary["frames_sampled"],
        frames_read=summary["frames_read"],
        faces=summary["faces_embedded"],
        identities=summary["identities"],
        counts=summary["counts"],
        failed_chunks=len(summary["failed_chunks"]),
        cli_elapsed_s=summary["elapsed_s"],
        stage_seconds=summary.get("stage_seconds"),
        runtimes=summary.get("runtimes"),
        decode=summary.get("decode"),
        milestones_s={k: round(v - t0, 2) for k, v in sorted(milestones.times.items(), key=lambda kv: kv[1])},
    )
    result["first_face_s"] = result["milestones_s"].get("first_face_applied")
    if "all_chunks_applied" in milestones.times:
        result["teardown_s"] = round(result["wall_s"] - result["milestones_s"]["all_chunks_applied"], 2)
    frames, idents, boxes = [], [], []
    with open(workdir / "out" / "faces.jsonl") as fh:
        for line in fh:
            face = json.loads(line)
            frames.append(face["frame"])
            idents.append(face["identity"])
            boxes.append(face["bbox"])
    (workdir / "columns.json").write_text(
        json.dumps({"frames": frames, "identities": idents, "bboxes": boxes})
    )
    return result


def compare(a_dir: Path, b_dir: Path) -> dict[str, Any]:
    """B's faces against A's: face by face (same frames, same identities in order), and, for runs
    whose detections differ (another detector input or precision), matched by frame and box."""
    a = json.loads((a_dir / "columns.json").read_text())
    b = json.loads((b_dir / "columns.json").read_text())
    same_frames = a["frames"] == b["frames"]
    mismatches = [i for i, (x, y) in enumerate(zip(a["identities"], b["identities"], strict=False)) if x != y]
    identical = same_frames and not mismatches and len(a["identities"]) == len(b["identities"])
    first = mismatches[0] if mismatches else None
    result = {
        "identical": identical,
        "faces_a": len(a["identities"]),
        "faces_b": len(b["identities"]),
        "same_face_frames": same_frames,
        "identity_mismatches": len(mismatches),
        "first_mismatch": None if first is None else {"face": first, "frame": a["frames"][first]},
    }
    if a.get("bboxes") and b.get("bboxes"):
        result.update(agreement(a, b))
    return result


def agreement(a: dict[str, list], b: dict[str, list], min_iou: float = 0.5) -> dict[str, Any]:
    """Face-level agreement of two runs that may have found slightly different faces.

    Faces are paired by frame and box (IoU >= ``min_iou``, best first); B's identities are
    mapped one-to-one onto A's so as to agree on the most paired faces (Hungarian assignment).
    ``face_agreement`` = paired faces whose identities correspond / faces in the larger run (an
    unpaired face counts as a disagreement); ``bcubed_f`` scores B's identities with A's as
    the truth over the paired faces (facepipe.evaluate).
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    from facepipe.evaluate import bcubed_scores, box_iou

    by_frame: dict[int, list[int]] = defaultdict(list)
    for j, frame in enumerate(b["frames"]):
        by_frame[frame].append(j)
    pairs: list[tuple[int, int]] = []
    a_by_frame: dict[int, list[int]] = defaultdict(list)
    for i, frame in enumerate(a["frames"]):
        a_by_frame[frame].append(i)
    for frame, a_faces in a_by_frame.items():
        candidates = sorted(
            (
                (box_iou(a["bboxes"][i], b["bboxes"][j]), i, j)
                for i in a_faces
                for j in by_frame.get(frame, ())
            ),
            reverse=True,
        )
        used_a, used_b = set(), set()
        for iou, i, j in candidates:
            if iou < min_iou:
                break
            if i not in used_a and j not in used_b:
                used_a.add(i)
                used_b.add(j)
                pairs.append((i, j))
    ids_a = sorted({a["identities"][i] for i, _ in pairs})
    ids_b = sorted({b["identities"][j] for _, j in pairs})
    table = np.zeros((len(ids_b), len(ids_a)), dtype=np.int64)
    pos_a = {x: n for n, x in enumerate(ids_a)}
    pos_b = {x: n for n, x in enumerate(ids_b)}
    for i, j in pairs:
        table[pos_b[b["identities"][j]], pos_a[a["identities"][i]]] += 1
    rows, cols = linear_sum_assignment(-table) if table.size else ([], [])
    agreeing = int(table[rows, cols].sum()) if table.size else 0
    scores = bcubed_scores([b["identities"][j] for _, j in pairs], [a["identities"][i] for i, _ in pairs])
    larger = max(len(a["frames"]), len(b["frames"])) or 1
    return {
        "paired_faces": len(pairs),
        "face_agreement": round(agreeing / larger, 5),
        "faces_agreeing": agreeing,
        "bcubed_f_vs_a": round(scores["f1"], 5),
        "identities_a": len(set(a["identities"])),
        "identities_b": len(set(b["identities"])),
    }


# ---------------------------------------------------------------------------------------
# Chunk record size, measured by calling the pipeline functions directly
# ---------------------------------------------------------------------------------------
def message_sizes(args: argparse.Namespace, samples: int = 12) -> dict[str, Any]:
    import base64

    if getattr(args, "code_dir", None):
        sys.path.insert(0, str(args.code_dir))
    from facepipe.contracts import RunParams
    from facepipe.models import FaceDetector, FaceEmbedder, resolve_model
    from facepipe.pipeline import detect_chunk, embed_record
    from facepipe.settings import load_settings
    from facepipe.video import plan, probe

    flags = args.contenders[0].flags
    chunk_size = int(flags[flags.index("--chunk-size") + 1]) if "--chunk-size" in flags else 8
    settings = load_settings(frame_step=args.frame_step, chunk_size=chunk_size)
    info = probe(args.video)
    planned = plan(info, settings.decoder, args.frame_step, chunk_size)
    params = RunParams.build(settings, info, planned.decoder)
    chunks = planned.chunks
    picks = [
        chunks[round(i * (len(chunks) - 1) / max(1, samples - 1))] for i in range(min(samples, len(chunks)))
    ]
    detector = FaceDetector(resolve_model("detector"), 0)
    embedder = FaceEmbedder(resolve_model("embedder"), 0)
    rows = []
    for chunk in picks:
        record = detect_chunk(chunk, params, detector)
        detect_bytes = len(record.to_json())
        crop_bytes = sum(len(c) for c in record.crops)
        embed_record(record, embedder, keep_crops=False)
        stored_bytes = len(record.to_json())
        # Celery's Redis transport base64-encodes the JSON body inside a JSON envelope.
        body = json.dumps([["RUN_ID", chunk.seq, "facepipe", {}], {}, {}]).encode()
        envelope = len(base64.b64encode(body)) + 1100
        rows.append(
            {
                "seq": chunk.seq,
                "faces": len(record.faces),
                "detect_to_embed_record_bytes": detect_bytes,
                "crop_base64_bytes": crop_bytes,
                "embed_to_writer_record_bytes": stored_bytes,
                "celery_embed_message_bytes_est": envelope + (detect_bytes * 4 + 2) // 3,
            }
        )
    rows.sort(key=lambda r: r["faces"])
    typical = rows[len(rows) // 2]
    with_faces = [r for r in rows if r["faces"]]
    per_face = (
        statistics.median(r["crop_base64_bytes"] / r["faces"] for r in with_faces) if with_faces else None
    )
    return {
        "chunk_size": chunk_size,
        "typical": typical,
        "samples": rows,
        "crop_base64_bytes_per_face": per_face,
    }


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def fmt(s: dict[str, float], digits: int = 1) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    agg = {
        "wall_s": spread(walls),
        "sampled_fps": spread([r["frames_sampled"] / r["wall_s"] for r in runs]),
        "faces_per_s": spread([r["faces"] / r["wall_s"] for r in runs]),
        "cpu_s": spread([r["cpu_s"] for r in runs]),
        "cores_used": spread([r["cores_used"] for r in runs]),
        "peak_tree_rss_mb": spread([r["peak_tree_rss_mb"] for r in runs]),
        "peak_tree_pss_mb": spread([r["peak_tree_pss_mb"] for r in runs]),
        "other_cores": spread([r["other_cores"] for r in runs]),
        "cpu_pressure": spread([r["cpu_pressure"] for r in runs]),
        "frames_sampled": runs[0]["frames_sampled"],
        "frames_read": runs[0]["frames_read"],
        "faces": runs[0]["faces"],
        "identities": runs[0]["identities"],
    }
    firsts = [r["first_face_s"] for r in runs if r.get("first_face_s") is not None]
    if firsts:
        agg["first_face_s"] = spread(firsts)
    teardowns = [r["teardown_s"] for r in runs if r.get("teardown_s") is not None]
    if teardowns:
        agg["teardown_s"] = spread(teardowns)
    return agg


def code_line(code: dict[str, Any] | None) -> str:
    if not code:
        return "the working tree as it was during each run"
    changed = ", ".join(code["uncommitted"]) or "none"
    return f"{code['dir']} (copy of git {code['git_head'][:7]} plus uncommitted: {changed})"


def _cell(agg: dict[str, Any], key: str, digits: int = 1) -> str:
    return fmt(agg[key], digits) if key in agg else "-"


def report(results: dict[str, Any]) -> str:
    """Markdown: one column per configuration (A, then the contenders), ratios from the same run."""
    names = ["A", *results["contenders"]]
    aggs = {"A": results["A"]["aggregate"], **{n: c["aggregate"] for n, c in results["contenders"].items()}}
    runs = {"A": results["A"]["runs"], **{n: c["runs"] for n, c in results["contenders"].items()}}
    lines = [
        f"video {results['video']} ({results['video_frames']} frames, {results['video_size']}), "
        f"frame step {results['frame_step']}, {results['pairs']} rounds, {results['cpus']} CPUs, "
        f"load average {results.get('loadavg_at_start', ['?'])[0]} at start",
        f"code: {code_line(results.get('code'))}",
        f"A = `{results['A']['command']}`",
        *[f"{n} = `{c['command']}`" for n, c in results["contenders"].items()],
        "",
        "| metric (median, min–max) | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]

    def row(label: str, fn: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(n) for n in names) + " |")

    row("wall time, s", lambda n: _cell(aggs[n], "wall_s"))
    row(
        "**speed-up vs A** (ratio of medians; per round)",
        lambda n: (
            "1"
            if n == "A"
            else f"**{results['contenders'][n]['speedup_median']:.2f}x** ("
            + ", ".join(f"{r:.2f}" for r in results["contenders"][n]["speedup_rounds"])
            + ")"
        ),
    )
    row("sampled frames/s", lambda n: _cell(aggs[n], "sampled_fps", 2))
    row("CPU time, s (all processes)", lambda n: _cell(aggs[n], "cpu_s"))
    row("cores busy", lambda n: _cell(aggs[n], "cores_used", 2))
    row("peak RSS, sum over tree, MB", lambda n: _cell(aggs[n], "peak_tree_rss_mb", 0))
    row("peak PSS, sum over tree, MB", lambda n: _cell(aggs[n], "peak_tree_pss_mb", 0))
    row("launch to first face, s", lambda n: _cell(aggs[n], "first_face_s", 2))
    row("last chunk to exit, s", lambda n: _cell(aggs[n], "teardown_s", 2))
    row("frames decoded / sampled", lambda n: f"{aggs[n]['frames_read']} / {aggs[n]['frames_sampled']}")
    row("faces / identities", lambda n: f"{aggs[n]['faces']} / {aggs[n]['identities']}")
    row(
        "models",
        lambda n: "ORT default threads" if n == "A" else "; ".join(runs[n][-1].get("runtimes") or []),
    )
    row("noise: other load, cores", lambda n: _cell(aggs[n], "other_cores", 2))
    row("noise: CPU pressure", lambda n: _cell(aggs[n], "cpu_pressure", 2))
    lines += ["", "Faces against A (last round) and against the reference runs (untimed):", ""]
    refs = list(results.get("references", {}))
    header = ["vs A", *[f"vs {r}" for r in refs]]
    lines += ["| run | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for n in results["contenders"]:
        cells = []
        for target in ["A", *refs]:
            cmp = results["contenders"][n]["compare"].get(target)
            cells.append(_compare_cell(cmp))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for r in refs:
        cmp = results["references"][r]["compare"].get("A")
        lines.append(f"| {r} (reference) | {_compare_cell(cmp)} |" + " |" * len(refs))
    lines += ["", "| round | " + " | ".join(f"{n} wall s" for n in names) + " | other load (cores) |"]
    lines.append("|---" * (len(names) + 2) + "|")
    for i in range(results["pairs"]):
        walls = " | ".join(f"{runs[n][i]['wall_s']:.1f}" for n in names)
        noise = " / ".join(f"{runs[n][i]['other_cores']:.2f}" for n in names)
        lines.append(f"| {i + 1} | {walls} | {noise} |")
    lines += ["", "Stage seconds (workers' own timers, summed over chunks; last round):", ""]
    stages = ("decode", "blur", "detect", "align", "embed")
    lines += ["| run | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    base = results["A"]["runs"][-1]["stage_s"]
    lines.append("| A (own timers) | " + " | ".join(f"{base.get(k, 0):.1f}" for k in stages) + " |")
    for n in results["contenders"]:
        st = runs[n][-1].get("stage_seconds") or {}
        lines.append(f"| {n} | " + " | ".join(f"{st.get(k, 0):.1f}" for k in stages) + " |")
    lines += ["", "Milestones of the last round (s from launch):", ""]
    for n in results["contenders"]:
        ms = runs[n][-1]["milestones_s"]
        lines.append(
            f"- {n}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in ms.items())
            + f", exit {runs[n][-1]['wall_s']:.2f}"
        )
    lines += ["", "Per process role, last round (peak RSS MB / CPU s):", ""]
    for n in names:
        roles = runs[n][-1]["roles"]
        lines.append(
            f"- {n}: "
            + "; ".join(
                f"{role} x{r['processes']} {r['peak_rss_mb']:.0f} MB / {r['cpu_s']:.1f} s"
                for role, r in sorted(roles.items(), key=lambda kv: -kv[1]["cpu_s"])
            )
        )
    stage = results.get("stage_run")
    if stage:
        mon = stage["monitor"]
        lines += [
            "",
            f"Instrumented run of {stage['contender']} (MONITOR, wall {stage['wall_s']:.1f} s): writer "
            f"{mon['writer_python_ms_per_chunk']} ms Python per chunk; chunk stored to applied median "
            f"{mon['store_to_apply_ms_median']} ms.",
            "",
            "| task message (from MONITOR) | count | median bytes | max bytes | total MB |",
            "|---|---|---|---|---|",
        ]
        for queue, m in mon["message_bytes"].items():
            lines.append(f"| {queue} | {m['count']} | {m['median']} | {m['max']} | {m['total'] / 1e6:.2f} |")
    sizes = results.get("message_sizes")
    if sizes:
        t = sizes["typical"]
        lines += [
            "",
            f"Typical chunk (median of {len(sizes['samples'])} sampled chunks, detect_chunk/embed_record): "
            f"{t['faces']} faces; record detect->embed {t['detect_to_embed_record_bytes']} B, celery embed "
            f"message ~{t['celery_embed_message_bytes_est']} B, record embed->writer "
            f"{t['embed_to_writer_record_bytes']} B.",
        ]
    return "\n".join(lines)


def _compare_cell(cmp: dict[str, Any] | None) -> str:
    if not cmp:
        return "-"
    if cmp["identical"]:
        return f"identical ({cmp['faces_a']} faces)"
    text = f"{cmp['identity_mismatches']} mismatches in order; {cmp['faces_b']} vs {cmp['faces_a']} faces"
    if "face_agreement" in cmp:
        text += (
            f"; paired {cmp['paired_faces']}, agreement {100 * cmp['face_agreement']:.2f}%, "
            f"BCubed F {cmp['bcubed_f_vs_a']:.4f}, ids {cmp['identities_b']} vs {cmp['identities_a']}"
        )
    return text


def episode_report(results: dict[str, Any]) -> str:
    lines = [
        f"video {results['video']} ({results['video_frames']} frames, {results['video_size']}), "
        f"frame step {results['frame_step']}, {results['cpus']} CPUs",
        "",
        "| run | wall | CPU s | cores | peak PSS MB | faces / ids | decoded / video frames | other load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, r in results["runs"].items():
        dec = r.get("decode") or {}
        lines.append(
            f"| {n} | {r['wall_s']:.0f} s ({r['wall_s'] / 60:.2f} min) | {r['cpu_s']:.0f} "
            f"| {r['cores_used']:.2f} "
            f"| {r['peak_tree_pss_mb']:.0f} | {r['faces']} / {r['identities']} "
            f"| {dec.get('frames_decoded', r.get('frames_read'))} / {dec.get('video_frames', '?')} "
            f"| {r['other_cores']:.2f} |"
        )
    lines += [
        "",
        "Stage seconds (workers' own timers) and memory over time per role (RSS MB at 10/50/90/100% "
        "of the run):",
        "",
    ]
    for n, r in results["runs"].items():
        st = r.get("stage_seconds") or r.get("stage_s") or {}
        lines.append(f"- {n}: " + ", ".join(f"{k} {v:.1f} s" for k, v in st.items()))
        timeline = r.get("timeline") or []
        if timeline:
            roles = sorted({role for _, by in timeline for role in by})
            for role in roles:
                points = [by.get(role, [0, 0])[0] for _, by in timeline if role in by]
                if len(points) < 2:
                    continue
                marks = [points[min(len(points) - 1, int(len(points) * q))] for q in (0.1, 0.5, 0.9)]
                lines.append(
                    f"  - {role}: " + " / ".join(f"{m:.0f}" for m in marks) + f" / {points[-1]:.0f} MB"
                    f" (min {min(points[len(points) // 10 :]):.0f}, max {max(points):.0f})"
                )
    return "\n".join(lines)


def parse_contenders(args: argparse.Namespace) -> list[Contender]:
    texts = args.contender or [DEFAULT_CONTENDER]
    contenders = [Contender.parse(t, "B" if len(texts) == 1 else f"B{i + 1}") for i, t in enumerate(texts)]
    if len({c.name for c in contenders}) != len(contenders):
        raise SystemExit("bench: contender names must differ (NAME=FLAGS)")
    return contenders


def prepare_code(
    args: argparse.Namespace, workdir: Path, contenders: list[Contender]
) -> dict[str, Any] | None:
    """Snapshot the working tree (and check out revisions); find which contenders can turn the
    post-run merge off (--merge-thresh exists in their code)."""
    code = None
    if not args.no_snapshot:
        code = snapshot_code(workdir)
        args.code_dir = code["dir"]
    for contender in contenders:
        if contender.rev:
            contender.code_dir = checkout_rev(workdir, contender.rev)
        helptext = subprocess.run(
            facepipe_cmd(args, workdir / "unused")[:2] + ["--help"],
            capture_output=True,
            text=True,
            env=code_env(args, contender),
        ).stdout
        # --clustering seed where facepipe has it (with the default --clustering tracks,
        # --merge-thresh 0 would leave every face track its own identity), else switch off
        # the post-run merge where facepipe has one.
        contender.seed_mode = "--clustering" in helptext
        contender.merge_off = "--merge-thresh" in helptext
    return code


def video_facts(video: Path) -> tuple[int, str]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    size = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    cap.release()
    return frames, size


def run_episode(args: argparse.Namespace, contenders: list[Contender], workdir: Path) -> dict[str, Any]:
    """One run per contender (and A with --episode-baseline) on a long video: wall, stages, memory."""
    frames, size = video_facts(args.video)
    results: dict[str, Any] = {
        "mode": "episode",
        "when": workdir.name,
        "video": str(args.video),
        "video_frames": frames,
        "video_size": size,
        "frame_step": args.frame_step,
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_at_start": os.getloadavg(),
        "commands": {c.name: c.describe() for c in contenders},
        "runs": {},
    }
    if args.episode_baseline:
        print("bench: episode: A", file=sys.stderr, flush=True)
        results["runs"]["A"] = run_a(args, workdir / "A")
    for contender in contenders:
        print(f"bench: episode: {contender.name}", file=sys.stderr, flush=True)
        run = run_b(args, workdir / contender.name, contender=contender)
        results["runs"][contender.name] = run
        print(f"bench: episode: {contender.name} {run['wall_s']:.1f} s", file=sys.stderr, flush=True)
    results["loadavg_at_end"] = os.getloadavg()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="rounds of A and every contender (default 3)")
    parser.add_argument("--video", type=Path, default=make_video.DEFAULT_PATH, help="built if missing")
    parser.add_argument("--frame-step", type=int, default=15)
    parser.add_argument(
        "--contender",
        action="append",
        default=None,
        metavar="[NAME[@REV]=]FLAGS",
        help=f"a facepipe run configuration (repeatable; default {DEFAULT_CONTENDER!r}); NAME@REV runs "
        "the code of git revision REV",
    )
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME[@REV]=FLAGS",
        help="an untimed facepipe run every contender's faces are also compared with (repeatable)",
    )
    parser.add_argument(
        "--contender-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the facepipe runs (repeatable)",
    )
    parser.add_argument("--baseline-args", default="", help="extra flags for baseline.py, e.g. '--threads 2'")
    parser.add_argument(
        "--sim-thresh", type=float, default=0.27, help="given to A and B (default: the seed's 0.27)"
    )
    parser.add_argument("--refine-limit", type=int, default=30, help="given to A and B (default 30)")
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run the working tree as is (default: a copy made at start)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facepipe-bench/runs"))
    parser.add_argument("--results", type=Path, default=BENCH / "results.json")
    parser.add_argument("--no-stage-run", action="store_true", help="skip the extra instrumented B run")
    parser.add_argument("--no-sizes", action="store_true", help="skip the in-process chunk record sizing")
    parser.add_argument(
        "--episode",
        action="store_true",
        help="one run per contender on a long video: wall time, stage times, memory over time",
    )
    parser.add_argument("--episode-baseline", action="store_true", help="with --episode, also run A once")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    args.contenders = parse_contenders(args)
    references = [Contender.parse(t, f"R{i + 1}") for i, t in enumerate(args.reference)]

    if args.video == make_video.DEFAULT_PATH and not args.video.exists():
        make_video.build(args.video)
    if not args.video.exists():
        raise SystemExit(f"bench: video not found: {args.video} (build it with bench/make_video.py)")
    frames, size = video_facts(args.video)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = args.workdir / stamp
    code = prepare_code(args, workdir, args.contenders + references)

    if args.episode:
        results = run_episode(args, args.contenders, workdir)
        results["code"] = code
        table = episode_report(results)
        results["table_markdown"] = table
        args.results.write_text(json.dumps(results, indent=2))
        print(table)
        print(f"\nresults: {args.results}; run folders: {workdir}")
        return 0

    a_runs: list[dict[str, Any]] = []
    b_runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in args.contenders}
    for i in range(1, args.pairs + 1):
        a = run_a(args, workdir / f"A{i}")
        a_runs.append(a)
        print(
            f"bench: round {i}: A {a['wall_s']:.1f} s (load {a['loadavg_before']})",
            file=sys.stderr,
            flush=True,
        )
        for contender in args.contenders:
            b = run_b(args, workdir / f"{contender.name}{i}", contender=contender)
            b_runs[contender.name].append(b)
            cmp = compare(workdir / f"A{i}", workdir / f"{contender.name}{i}")
            print(
                f"bench: round {i}: {contender.name} {b['wall_s']:.1f} s "
                f"(A/B {a['wall_s'] / b['wall_s']:.2f}), "
                f"identical to A: {cmp['identical']}",
                file=sys.stderr,
                flush=True,
            )
    ref_runs = {}
    for ref in references:
        print(f"bench: reference {ref.name} (untimed)", file=sys.stderr, flush=True)
        ref_runs[ref.name] = run_b(args, workdir / f"ref-{ref.name}", contender=ref)

    last = args.pairs
    results: dict[str, Any] = {
        "when": stamp,
        "workdir": str(workdir),
        "video": str(args.video),
        "video_frames": frames,
        "video_size": size,
        "frame_step": args.frame_step,
        "sim_thresh": args.sim_thresh,
        "refine_limit": args.refine_limit,
        "code": code,
        "pairs": args.pairs,
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_at_start": [a_runs[0]["loadavg_before"]],
        "loadavg_at_end": os.getloadavg(),
        "A": {
            "command": shlex.join(
                ["python", "bench/baseline.py", str(args.video), "--frame-step", str(args.frame_step)]
                + ["--sim-thresh", str(args.sim_thresh), "--refine-limit", str(args.refine_limit)]
            )
            + (f" {args.baseline_args}" if args.baseline_args else ""),
            "aggregate": aggregate(a_runs),
            "runs": a_runs,
        },
        "contenders": {},
        "references": {},
        "A_runs_deterministic": all(
            compare(workdir / "A1", workdir / f"A{i}")["identical"] for i in range(2, args.pairs + 1)
        ),
    }
    for contender in args.contenders:
        runs = b_runs[contender.name]
        agg = aggregate(runs)
        compares = {"A": compare(workdir / f"A{last}", workdir / f"{contender.name}{last}")}
        for ref in references:
            compares[ref.name] = compare(workdir / f"ref-{ref.name}", workdir / f"{contender.name}{last}")
        results["contenders"][contender.name] = {
            "command": " ".join(args.contender_env + [shlex.join(facepipe_cmd(args, Path("OUT"), contender))])
            + (f"  # code of git {contender.rev}" if contender.rev else ""),
            "aggregate": agg,
            "runs": runs,
            "speedup_median": round(
                results["A"]["aggregate"]["wall_s"]["median"] / agg["wall_s"]["median"], 3
            ),
            "speedup_rounds": [
                round(a["wall_s"] / b["wall_s"], 3) for a, b in zip(a_runs, runs, strict=True)
            ],
            "identical_to_A_all_rounds": all(
                compare(workdir / f"A{i}", workdir / f"{contender.name}{i}")["identical"]
                for i in range(1, args.pairs + 1)
            ),
            "compare": compares,
        }
    for ref in references:
        results["references"][ref.name] = {
            "command": shlex.join(facepipe_cmd(args, Path("OUT"), ref)),
            "run": ref_runs[ref.name],
            "compare": {"A": compare(workdir / f"A{last}", workdir / f"ref-{ref.name}")},
        }

    if not args.no_stage_run:
        first = args.contenders[0]
        print(f"bench: instrumented {first.name} run (MONITOR; not timed)", file=sys.stderr, flush=True)
        monitor = CommandLog()
        stage = run_b(args, workdir / "B-monitor", monitor, contender=first)
        monitor.join()
        results["stage_run"] = {
            "contender": first.name,
            "wall_s": stage["wall_s"],
            "milestones_s": stage["milestones_s"],
            "monitor": monitor.summary(),
            "per_chunk": {str(k): v for k, v in sorted(monitor.chunks.items())},
        }
    if not args.no_sizes:
        print("bench: sizing chunk records with detect_chunk/embed_record", file=sys.stderr, flush=True)
        results["message_sizes"] = message_sizes(args)

    table = report(results)
    results["table_markdown"] = table
    args.results.write_text(json.dumps(results, indent=2))
    print(table)
    print(f"\nresults: {args.results}; run folders: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
