"""What the bench reads from a facepipe run's embedded server while the run goes on.

* :class:`Milestones`, polled on every sampler tick: when the run was created, its first chunk
  embedded, its first face applied and its last chunk applied;
* :class:`CommandLog`, Redis ``MONITOR`` on one instrumented run: every chunk record stored
  (hence the summed stage seconds), the size of every task message, bytes per command and key
  class, and the writer's time per chunk.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.procs import TreeSampler


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
