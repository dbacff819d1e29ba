"""Load and faults on the compose fleet: 3 dispatchers submit 6 videos at once while one detect
and one embed container are killed; every run's ``faces.jsonl`` must equal its solo run's.

    python bench/fleet_load.py                 # TLS on (scripts/cluster.sh up --tls), ~10 min here
    python bench/fleet_load.py --no-tls --step 5

What it does, on this machine only (its own compose project on loopback ports, its own copy of
the repository; nothing else is touched) and bounded in time (every wait has a deadline; the
stack is taken down and the engine this script started is stopped, whatever happens):

1. ``scripts/cluster.sh up [--tls]`` in a copy of the repository with ``DETECT_SCALE`` and
   ``EMBED_SCALE`` containers of one process each (``FACEPIPE_LOCAL_IMAGES=1``: the images get
   this venv's packages, offline);
2. **solo**: each of the 6 shared clips alone, one after the other, ``facepipe run VIDEO
   --broker URL`` from this host: the references, and the solo timings;
3. **load**: 3 dispatchers at once, each ``facepipe run A B --broker URL`` (a season of two
   clips: their chunks interleave on the workers, then a series pass); once a third of the
   chunks are applied, one detect and one embed container are ``docker kill``-ed and started
   again ``--down`` seconds later (their chunks come back after ``FACEPIPE_VISIBILITY_TIMEOUT``);
4. every episode's ``faces.jsonl`` is compared with its solo run's, byte for byte, and the
   figures are written to ``bench/results/fleet_load.json``: wall times, chunks, sampled frames
   and faces per second, the broker's peak memory, each run's bytes in Redis per face and per
   sampled frame (what compose/README.md's memory sizing uses).

Exit status 0 when every run equals its solo run, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facepipe.distributed.store import RunStore, list_runs  # noqa: E402

SHARED = Path(os.environ.get("FACEPIPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
VIDEOS = (
    "hamilton_short.mp4",
    "two_person_call.mp4",
    "dance_scene.mp4",
    "debate_clip.mp4",
    "talk_show_montage.mp4",
    "herapheri.mp4",
)
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
PREFIX = "facepipe"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def say(text: str) -> None:
    print(f"fleet_load: {text}", file=sys.stderr, flush=True)


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def engine_answers() -> bool:
    return shutil.which("docker") is not None and docker("info", timeout=60).returncode == 0


class Fleet:
    """A compose deployment in a copy of the repository, on loopback ports of its own."""

    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work, self.args = work, args
        self.repo = work / "repo"
        self.project = f"fpload{secrets.token_hex(3)}"
        self.password = secrets.token_hex(16)
        self.port = free_port()
        self.outputs = work / "outputs"
        self.outputs.mkdir(parents=True)
        (work / "faces").mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("FACEPIPE_", "COMPOSE_"))}
        self.cluster_env = {
            **self.env,
            "FACEPIPE_LOCAL_IMAGES": "1",
            "COMPOSE_PROJECT_NAME": self.project,
            "REDIS_PASSWORD": self.password,
            "FLOWER_USER": "load",
            "FLOWER_PASSWORD": secrets.token_hex(8),
            "REDIS_HOST_PORT": f"127.0.0.1:{self.port}",
            "FLOWER_HOST_PORT": f"127.0.0.1:{free_port()}",
            "VIDEO_DIR": str((SHARED / "videos").resolve()),
            "OUTPUT_DIR": str(self.outputs),
            "CROPS_DIR": str(work / "faces"),
            "DETECT_SCALE": str(args.detect),
            "EMBED_SCALE": str(args.embed),
            "DETECT_CONCURRENCY": "1",
            "EMBED_CONCURRENCY": "1",
            "FACEPIPE_VISIBILITY_TIMEOUT": str(args.visibility),
            "FACEPIPE_RESTORE_INTERVAL": "1",
        }
        scheme = "rediss" if args.tls else "redis"
        self.broker = f"{scheme}://:{self.password}@127.0.0.1:{self.port}/0"
        self.ca = self.repo / "compose" / ".tls" / "redis" / "ca.crt"
        self.up = False

    def copy_repo(self) -> None:
        self.repo.mkdir()
        for name in TREE:
            source = ROOT / name
            if source.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", ".env", "*.whl", ".tls")
                shutil.copytree(source, self.repo / name, ignore=ignore)
            else:
                shutil.copy2(source, self.repo / name)
        (self.repo / ".venv").symlink_to(Path(sys.prefix))

    def cluster(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "scripts/cluster.sh", *args], cwd=self.repo, env=self.cluster_env,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def client(self) -> redis.Redis:
        extra = {"ssl_ca_certs": str(self.ca)} if self.args.tls else {}
        return redis.Redis.from_url(self.broker, socket_timeout=10, **extra)

    def broker_args(self) -> list[str]:
        return ["--broker", self.broker, *(["--tls-ca-certs", str(self.ca)] if self.args.tls else [])]

    def containers(self, service: str) -> list[str]:
        return docker(
            "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout.split()  # fmt: skip

    def dispatch(self, videos: list[Path], out: Path, log: Path) -> subprocess.Popen:
        flags = ["--frame-step", str(self.args.step), "--chunk-size", str(self.args.chunk_size)]
        return subprocess.Popen(
            [sys.executable, "-m", "facepipe.app.cli", "run", *map(str, videos), *flags,
             "--decoder", "opencv", "--no-progress", *self.broker_args(), "--out", str(out)],
            cwd=ROOT, env={**self.env, "FACEPIPE_VISIBILITY_TIMEOUT": str(self.args.visibility)},
            stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True,  # noqa: SIM115
        )  # fmt: skip


def wait(proc: subprocess.Popen, deadline: float, what: str) -> int:
    try:
        return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise SystemExit(f"fleet_load: {what} did not finish in time; stopped") from None


class MemorySampler(threading.Thread):
    """The broker's used memory twice a second, while the load runs."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.client, self.peak, self.stop = client, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            with contextlib.suppress(redis.RedisError, OSError):
                self.peak = max(self.peak, int(self.client.info("memory")["used_memory"]))


def run_sizes(client: redis.Redis, run_id: str) -> int:
    """A run's bytes in Redis, exactly (``MEMORY USAGE ... SAMPLES 0``)."""
    total = 0
    for key in client.scan_iter(match=f"{PREFIX}:run:{run_id}:*", count=1000):
        total += int(client.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0") or 0)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--step", type=int, default=3, help="--frame-step of every run (default 3)")
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--detect", type=int, default=2, help="detect containers (default 2)")
    parser.add_argument("--embed", type=int, default=2, help="embed containers (default 2)")
    parser.add_argument("--visibility", type=int, default=20, help="FACEPIPE_VISIBILITY_TIMEOUT (default 20)")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the killed containers stay down")
    parser.add_argument("--limit", type=float, default=1800, help="seconds the whole load phase may take")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "fleet_load.json")
    args = parser.parse_args()

    videos = [(SHARED / "videos" / name).resolve() for name in VIDEOS]
    missing = [str(v) for v in videos if not v.is_file()]
    if missing:
        say(f"shared clips missing: {missing} (../shared/data)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="fleet-load-"))
    fleet = Fleet(work, args)
    engine_started = False
    results: dict[str, Any] = {"params": {k: str(v) for k, v in vars(args).items()}}
    started = time.monotonic()
    try:
        if not engine_answers():
            start = ["bash", "scripts/docker-engine.sh", "start"]
            done = subprocess.run(start, cwd=ROOT, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                say(f"no Docker engine: {done.stderr[-1500:]}")
                return 1
            engine_started = True
        fleet.copy_repo()
        phase = time.monotonic()
        fleet.up = True
        done = fleet.cluster("up", *(["--tls"] if args.tls else []))
        if done.returncode != 0:
            say(f"cluster.sh up failed:\n{done.stderr[-3000:]}")
            return 1
        results["up_s"] = round(time.monotonic() - phase, 1)
        say(f"fleet up in {results['up_s']} s: {args.detect} detect, {args.embed} embed, 1 writer")
        client = fleet.client()

        # ---- solo: one clip at a time ----------------------------------------------------
        solo: dict[str, dict[str, Any]] = {}
        for video in videos:
            phase = time.monotonic()
            before = set(list_runs(client, PREFIX))
            out = fleet.outputs / "solo" / video.stem
            proc = fleet.dispatch([video], out, work / f"solo-{video.stem}.log")
            code = wait(proc, time.monotonic() + 600, f"the solo run of {video.name}")
            if code != 0:
                tail = (work / f"solo-{video.stem}.log").read_text()[-1500:]
                say(f"solo run of {video.name} failed ({code}): {tail}")
                return 1
            run_id = (set(list_runs(client, PREFIX)) - before).pop()
            summary = json.loads((out / "summary.json").read_text())
            solo[video.stem] = {
                "run_id": run_id,
                "wall_s": round(time.monotonic() - phase, 1),
                "chunks": summary["chunks"],
                "sampled": summary["frames_sampled"],
                "faces": summary["faces_embedded"],
                "identities": summary["identities"],
                "bytes_in_redis": run_sizes(client, run_id),
            }
            say(f"solo {video.name}: {solo[video.stem]}")
        results["solo"] = solo

        # ---- load: 3 dispatchers, 2 clips each, containers killed ------------------------
        pairs = [videos[0:2], videos[2:4], videos[4:6]]
        total_chunks = sum(solo[v.stem]["chunks"] for v in videos)
        sampler = MemorySampler(fleet.client())
        sampler.start()
        before = set(list_runs(client, PREFIX))
        phase = time.monotonic()
        deadline = phase + args.limit
        procs = [
            fleet.dispatch(pair, fleet.outputs / "load" / f"d{i + 1}", work / f"load-d{i + 1}.log")
            for i, pair in enumerate(pairs)
        ]

        def applied() -> int:
            runs = set(list_runs(client, PREFIX)) - before
            return sum(RunStore(client, PREFIX, run_id).next_seq() for run_id in runs)

        while applied() < total_chunks // 3:
            if time.monotonic() > deadline or all(p.poll() is not None for p in procs):
                break
            time.sleep(0.2)
        killed = {"detect": fleet.containers("detect")[0], "embed": fleet.containers("embed")[0]}
        kill_at = applied()
        for container in killed.values():
            docker("kill", container)
        kill_t = time.monotonic() - phase
        time.sleep(args.down)
        for container in killed.values():
            docker("start", container)
        say(f"killed one detect and one embed container at chunk {kill_at} of {total_chunks}, "
            f"{kill_t:.1f} s in; started again {args.down:g} s later")  # fmt: skip
        codes = [wait(p, deadline, f"dispatcher {i + 1}") for i, p in enumerate(procs)]
        load_s = time.monotonic() - phase
        sampler.stop.set()
        load_runs = sorted(set(list_runs(client, PREFIX)) - before)

        # ---- the comparison ---------------------------------------------------------------
        same = {}
        for i, pair in enumerate(pairs):
            for video in pair:
                got = fleet.outputs / "load" / f"d{i + 1}" / video.stem / "faces.jsonl"
                want = fleet.outputs / "solo" / video.stem / "faces.jsonl"
                same[video.stem] = got.is_file() and got.read_bytes() == want.read_bytes()
        sizes = {run_id: run_sizes(client, run_id) for run_id in load_runs}
        sampled = sum(solo[v.stem]["sampled"] for v in videos)
        faces = sum(solo[v.stem]["faces"] for v in videos)
        results["load"] = {
            "dispatchers": len(procs),
            "exit_codes": codes,
            "wall_s": round(load_s, 1),
            "solo_wall_s_sum": round(sum(s["wall_s"] for s in solo.values()), 1),
            "chunks": total_chunks,
            "sampled_frames": sampled,
            "faces": faces,
            "sampled_per_s": round(sampled / load_s, 1),
            "faces_per_s": round(faces / load_s, 1),
            "killed": {"at_chunk": kill_at, "after_s": round(kill_t, 1), "down_s": args.down},
            "redis_peak_used_mb": round(sampler.peak / 1e6, 1),
            "run_bytes": sizes,
            "bytes_per_face": round(sum(sizes.values()) / max(1, faces)),
            "bytes_per_sampled_frame": round(sum(sizes.values()) / max(1, sampled)),
            "identical_to_solo": same,
        }
        results["all_identical"] = all(same.values()) and codes == [0, 0, 0]
        say(json.dumps(results["load"], indent=1))
        return 0 if results["all_identical"] else 1
    finally:
        if fleet.up:
            down = fleet.cluster("down", "-v", timeout=300)
            if down.returncode != 0:
                say(f"cluster.sh down -v failed: {down.stderr[-1000:]}")
        if engine_started:
            subprocess.run(
                ["bash", "scripts/docker-engine.sh", "stop"], cwd=ROOT, capture_output=True, timeout=300
            )
        results["total_s"] = round(time.monotonic() - started, 1)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=2) + "\n")
        say(f"results in {args.results}; logs and outputs in {work}")


if __name__ == "__main__":
    sys.exit(main())
