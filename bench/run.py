"""Baseline (A) against ``facepipe run`` (B), alternated A B A B ..., one command.

    python bench/run.py [--pairs 3] [--video PATH] [--frame-step 15]
                        [--contender "--num-det 2 --num-emb 1"] [--contender-env K=V]
                        [--baseline-args "--threads 1"] [--sim-thresh 0.27] [--refine-limit 30]
                        [--no-snapshot] [--no-stage-run] [--no-sizes] [--results FILE]

Both sides get the seed's clustering (``--sim-thresh``/``--refine-limit`` passed explicitly;
B also ``--clustering seed`` where facepipe has it, else ``--merge-thresh 0`` where it has that),
and run from a copy of ``facepipe/``,
``tasks/`` and ``celeryconfig.py`` taken at start, so edits made meanwhile do not mix in.

Each run is a fresh subprocess timed from launch to exit (imports, model loads, worker
start and stop included). While it runs, a sampler thread reads /proc every 0.1 s for
the whole process tree (peak RSS per process and role, CPU seconds per role) and, for
B, polls the run's embedded server for milestones (first chunk embedded, first face
applied, last chunk applied). After the pairs:

* one extra, untimed B run with Redis ``MONITOR`` attached recovers the per-chunk stage
  timings (``ChunkRecord.timings``, which the writer deletes with the chunk), the bytes
  of every task message, and the writer's time per chunk;
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
    procs: dict[int, ProcInfo] = field(default_factory=dict)
    peak_total_rss: int = 0
    peak_total_pss: int = 0
    samples: int = 0

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
        json.dumps({"frames": out["face_frames"], "identities": out["face_identities"]})
    )
    return result


def facepipe_cmd(args: argparse.Namespace, out: Path) -> list[str]:
    exe = Path(sys.executable).with_name("facepipe")
    cmd = [str(exe) if exe.exists() else "facepipe", "run", str(args.video)]
    cmd += ["--frame-step", str(args.frame_step), "--out", str(out)]
    cmd += ["--sim-thresh", str(args.sim_thresh), "--refine-limit", str(args.refine_limit)]
    if getattr(args, "seed_mode", False):
        cmd += ["--clustering", "seed"]  # the seed's algorithm exactly, as in A
    elif getattr(args, "merge_off", False):
        cmd += ["--merge-thresh", "0"]  # no post-run merge: the seed's algorithm, as in A
    return cmd + shlex.split(args.contender)


def code_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment of A and B: the code snapshot (if any) first on PYTHONPATH."""
    env = {**os.environ}
    code = getattr(args, "code_dir", None)
    if code:
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [env.get("PYTHONPATH")])])
    return env


def snapshot_code(workdir: Path) -> dict[str, Any]:
    """Copy facepipe/, tasks/ and celeryconfig.py so that edits made to the working tree
    while the bench runs cannot mix code versions between runs; record the git state."""
    import shutil

    code = workdir / "code"
    for name in ("facepipe", "tasks"):
        shutil.copytree(ROOT / name, code / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "celeryconfig.py", code / "celeryconfig.py")

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {
        "dir": str(code),
        "git_head": git("rev-parse", "HEAD"),
        "uncommitted": [p for p in dirty if p.startswith(("facepipe/", "tasks/", "celeryconfig"))],
    }


def contender_env(args: argparse.Namespace) -> dict[str, str]:
    env = code_env(args)
    env.pop("FACEPIPE_PROGRESS", None)
    for item in args.contender_env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def run_b(args: argparse.Namespace, workdir: Path, monitor: CommandLog | None = None) -> dict[str, Any]:
    milestones = Milestones()

    def hook(sampler: TreeSampler) -> None:
        if monitor is not None:
            monitor.attach(sampler)
        milestones(sampler)

    result = launch(facepipe_cmd(args, workdir / "out"), workdir, "cli", hook=hook, env=contender_env(args))
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
        milestones_s={k: round(v - t0, 2) for k, v in sorted(milestones.times.items(), key=lambda kv: kv[1])},
    )
    result["first_face_s"] = result["milestones_s"].get("first_face_applied")
    if "all_chunks_applied" in milestones.times:
        result["teardown_s"] = round(result["wall_s"] - result["milestones_s"]["all_chunks_applied"], 2)
    frames, idents = [], []
    with open(workdir / "out" / "faces.jsonl") as fh:
        for line in fh:
            face = json.loads(line)
            frames.append(face["frame"])
            idents.append(face["identity"])
    (workdir / "columns.json").write_text(json.dumps({"frames": frames, "identities": idents}))
    return result


def compare(a_dir: Path, b_dir: Path) -> dict[str, Any]:
    a = json.loads((a_dir / "columns.json").read_text())
    b = json.loads((b_dir / "columns.json").read_text())
    same_frames = a["frames"] == b["frames"]
    mismatches = [i for i, (x, y) in enumerate(zip(a["identities"], b["identities"], strict=False)) if x != y]
    identical = same_frames and not mismatches and len(a["identities"]) == len(b["identities"])
    first = mismatches[0] if mismatches else None
    return {
        "identical": identical,
        "faces_a": len(a["identities"]),
        "faces_b": len(b["identities"]),
        "same_face_frames": same_frames,
        "identity_mismatches": len(mismatches),
        "first_mismatch": None if first is None else {"face": first, "frame": a["frames"][first]},
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
    from facepipe.video import plan_chunks, probe

    flags = shlex.split(args.contender)
    chunk_size = int(flags[flags.index("--chunk-size") + 1]) if "--chunk-size" in flags else 8
    settings = load_settings(frame_step=args.frame_step, chunk_size=chunk_size)
    info = probe(args.video)
    params = RunParams.build(settings, info)
    chunks = plan_chunks(info.frame_count, args.frame_step, chunk_size)
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
    return agg


def code_line(code: dict[str, Any] | None) -> str:
    if not code:
        return "the working tree as it was during each run"
    changed = ", ".join(code["uncommitted"]) or "none"
    return f"{code['dir']} (copy of git {code['git_head'][:7]} plus uncommitted: {changed})"


def report(results: dict[str, Any]) -> str:
    a, b = results["A"]["aggregate"], results["B"]["aggregate"]
    lines = [
        f"video {results['video']} ({results['video_frames']} frames, {results['video_size']}), "
        f"frame step {results['frame_step']}, {results['pairs']} pairs, {results['cpus']} CPUs",
        f"code: {code_line(results.get('code'))}",
        f"A = `{results['A']['command']}`",
        f"B = `{results['B']['command']}`",
        "",
        "| metric (median, min–max) | A baseline | B facepipe |",
        "|---|---|---|",
        f"| wall time, s | {fmt(a['wall_s'])} | {fmt(b['wall_s'])} |",
        f"| sampled frames/s | {fmt(a['sampled_fps'], 2)} | {fmt(b['sampled_fps'], 2)} |",
        f"| faces/s | {fmt(a['faces_per_s'], 2)} | {fmt(b['faces_per_s'], 2)} |",
        f"| CPU time, s (all processes) | {fmt(a['cpu_s'])} | {fmt(b['cpu_s'])} |",
        f"| cores busy (CPU s / wall s) | {fmt(a['cores_used'], 2)} | {fmt(b['cores_used'], 2)} |",
        f"| peak RSS, sum over tree, MB | {fmt(a['peak_tree_rss_mb'], 0)} "
        f"| {fmt(b['peak_tree_rss_mb'], 0)} |",
        f"| peak PSS, sum over tree, MB | {fmt(a['peak_tree_pss_mb'], 0)} "
        f"| {fmt(b['peak_tree_pss_mb'], 0)} |",
        f"| launch to first face, s | {fmt(a['first_face_s'], 2) if 'first_face_s' in a else '-'} | "
        f"{fmt(b['first_face_s'], 2) if 'first_face_s' in b else '-'} |",
        f"| frames read / sampled | {a['frames_read']} / {a['frames_sampled']} | "
        f"{b['frames_read']} / {b['frames_sampled']} |",
        f"| faces / identities | {a['faces']} / {a['identities']} | {b['faces']} / {b['identities']} |",
        f"| noise: other processes' load, cores | {fmt(a['other_cores'], 2)} | {fmt(b['other_cores'], 2)} |",
        f"| noise: CPU pressure (share of time a task waited) | {fmt(a['cpu_pressure'], 2)} "
        f"| {fmt(b['cpu_pressure'], 2)} |",
        "",
        f"**speed-up, ratio of median wall times A/B: {results['speedup_median']:.2f}x**; "
        f"identities identical in every pair: **{results['identical_all_pairs']}**",
        "",
        "| pair | A wall s | B wall s | A/B | identical | mismatches | other load A / B, cores |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, pair in enumerate(results["pair_results"], 1):
        ra, rb = results["A"]["runs"][i - 1], results["B"]["runs"][i - 1]
        lines.append(
            f"| {i} | {pair['A_wall_s']:.1f} | {pair['B_wall_s']:.1f} "
            f"| {pair['A_wall_s'] / pair['B_wall_s']:.2f} | "
            f"{pair['compare']['identical']} | {pair['compare']['identity_mismatches']} | "
            f"{ra['other_cores']:.2f} / {rb['other_cores']:.2f} |"
        )
    last_b = results["B"]["runs"][-1]
    lines += ["", "Milestones of the last timed B run (s from launch):", ""]
    lines.append("| " + " | ".join(last_b["milestones_s"]) + " | exit |")
    lines.append("|" + "---|" * (len(last_b["milestones_s"]) + 1))
    lines.append(
        "| "
        + " | ".join(f"{v:.2f}" for v in last_b["milestones_s"].values())
        + f" | {last_b['wall_s']:.2f} |"
    )
    lines += [
        "",
        "Per process role, last A and last B run (peak RSS of the largest process of the role; "
        "seen = first and last /proc sample, s from launch):",
        "",
        "| run | role | processes | peak RSS MB | CPU s | seen from–to s |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in (("A", results["A"]["runs"][-1]), ("B", last_b)):
        for role, r in sorted(run["roles"].items(), key=lambda kv: -kv[1]["cpu_s"]):
            lines.append(
                f"| {name} | {role} | {r['processes']} | {r['peak_rss_mb']:.0f} | {r['cpu_s']:.1f} | "
                f"{r['first_seen_s']:.1f}–{r['last_seen_s']:.1f} |"
            )
    stage = results.get("stage_run")
    if stage:
        base = results["A"]["runs"][-1]["stage_s"]
        sums = stage["monitor"]["stage_sums_s"]
        lines += [
            "",
            f"Stage seconds: A's own timers (last A run) against the sum over B's chunk records "
            f"(instrumented run, wall {stage['wall_s']:.1f} s, {stage['monitor']['chunks_seen']} chunks; "
            f"B's stages run in parallel processes, so B's sums can exceed its wall time):",
            "",
            "| stage | A s | B sum s | B/A |",
            "|---|---|---|---|",
        ]
        for name in ("load", "decode", "blur", "detect", "align", "embed", "cluster"):
            va, vb = base.get(name), sums.get(name)
            if name == "cluster":
                vb = stage["monitor"]["writer_python_s_total"]
                name = "cluster (B: writer Python per chunk)"
            ratio = f"{vb / va:.2f}" if va and vb else "-"
            lines.append(
                f"| {name} | {'-' if va is None else f'{va:.2f}'} "
                f"| {'-' if vb is None else f'{vb:.2f}'} | {ratio} |"
            )
        mon = stage["monitor"]
        lines += [
            "",
            f"Writer: {mon['writer_python_ms_per_chunk']} ms Python per chunk; chunk stored to applied "
            f"median {mon['store_to_apply_ms_median']} ms, max {mon['store_to_apply_ms_max']} ms.",
            "",
            "| task message (from MONITOR) | count | median bytes | max bytes | total MB |",
            "|---|---|---|---|---|",
        ]
        for queue, m in mon["message_bytes"].items():
            lines.append(f"| {queue} | {m['count']} | {m['median']} | {m['max']} | {m['total'] / 1e6:.2f} |")
        lines.append(
            f"| chunk record stored for the writer (SET) | {mon['chunks_seen']} "
            f"| {mon['chunk_record_bytes_median']} | - | - |"
        )
    sizes = results.get("message_sizes")
    if sizes:
        t = sizes["typical"]
        lines += [
            "",
            f"Typical chunk (median of {len(sizes['samples'])} sampled chunks of "
            f"{sizes['chunk_size']} frames, "
            f"by detect_chunk/embed_record): {t['faces']} faces; record detect->embed "
            f"{t['detect_to_embed_record_bytes']} B (crops {t['crop_base64_bytes']} B), celery embed message "
            f"~{t['celery_embed_message_bytes_est']} B, record embed->writer "
            f"{t['embed_to_writer_record_bytes']} B; "
            f"{sizes['crop_base64_bytes_per_face']:.0f} B of base64 PNG per face.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="A B pairs (default 3)")
    parser.add_argument("--video", type=Path, default=make_video.DEFAULT_PATH, help="built if missing")
    parser.add_argument("--frame-step", type=int, default=15)
    parser.add_argument(
        "--contender",
        default=DEFAULT_CONTENDER,
        help=f"extra flags for facepipe run (default {DEFAULT_CONTENDER!r})",
    )
    parser.add_argument(
        "--contender-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for B (repeatable)",
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
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")

    if args.video == make_video.DEFAULT_PATH and not args.video.exists():
        make_video.build(args.video)
    if not args.video.exists():
        raise SystemExit(f"bench: video not found: {args.video} (build it with bench/make_video.py)")
    import cv2

    cap = cv2.VideoCapture(str(args.video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    size = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    cap.release()

    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = args.workdir / stamp
    code = None
    if not args.no_snapshot:
        code = snapshot_code(workdir)
        args.code_dir = code["dir"]
    # Seed clustering on both sides: --clustering seed where facepipe has it (with the default
    # --clustering tracks, --merge-thresh 0 would leave every face track its own identity), else
    # switch off the post-run merge where facepipe has one.
    helptext = subprocess.run(
        facepipe_cmd(args, workdir / "unused")[:2] + ["--help"],
        capture_output=True,
        text=True,
        env=code_env(args),
    ).stdout
    args.seed_mode = "--clustering" in helptext
    args.merge_off = "--merge-thresh" in helptext
    a_runs, b_runs, pairs = [], [], []
    for i in range(1, args.pairs + 1):
        a = run_a(args, workdir / f"A{i}")
        print(f"bench: pair {i}: A {a['wall_s']:.1f} s", file=sys.stderr, flush=True)
        b = run_b(args, workdir / f"B{i}")
        cmp = compare(workdir / f"A{i}", workdir / f"B{i}")
        print(
            f"bench: pair {i}: B {b['wall_s']:.1f} s, identities identical: {cmp['identical']}",
            file=sys.stderr,
            flush=True,
        )
        a_runs.append(a)
        b_runs.append(b)
        pairs.append({"A_wall_s": a["wall_s"], "B_wall_s": b["wall_s"], "compare": cmp})

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
        "B": {
            "command": " ".join(args.contender_env + [shlex.join(facepipe_cmd(args, Path("OUT")))]),
            "aggregate": aggregate(b_runs),
            "runs": b_runs,
        },
        "pair_results": pairs,
    }
    results["speedup_median"] = round(
        results["A"]["aggregate"]["wall_s"]["median"] / results["B"]["aggregate"]["wall_s"]["median"], 3
    )
    results["identical_all_pairs"] = all(p["compare"]["identical"] for p in pairs)
    results["A_runs_deterministic"] = all(
        compare(workdir / "A1", workdir / f"A{i}")["identical"] for i in range(2, args.pairs + 1)
    )

    if not args.no_stage_run:
        print("bench: instrumented B run (MONITOR; not timed in the table)", file=sys.stderr, flush=True)
        monitor = CommandLog()
        stage = run_b(args, workdir / "B-monitor", monitor)
        monitor.join()
        results["stage_run"] = {
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
