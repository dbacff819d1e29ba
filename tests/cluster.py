"""A private server plus hand-managed workers, for tests that crash and restart things."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facepipe.distributed.bridge import CelerySender
from facepipe.distributed.dispatch import new_run_id, resend_waiting, submit
from facepipe.distributed.embedded import EmbeddedServer, EmbeddedWorkers, kill_group, stop_process
from facepipe.distributed.stages import Send
from facepipe.distributed.store import RunStore, connect
from facepipe.media.probe import probe
from facepipe.settings import Settings
from tests.helpers import ROOT

FAST_RECOVERY = {
    "FACEPIPE_ORT_THREADS": "1",
    "FACEPIPE_VISIBILITY_TIMEOUT": "4",  # redeliver a dead worker's message after 4 s
    "FACEPIPE_RESTORE_INTERVAL": "1",
}
#: seconds without progress before a run's waiting chunk is sent again: above the visibility
#: timeout plus the scan lock's expiry, so redelivery comes first when it can
RESEND_AFTER_S = 20.0


class RestartableWorkers(EmbeddedWorkers):
    """Embedded workers that tests can kill with a real signal and start again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._specs: dict[str, tuple[str, int, dict[str, str], bool]] = {}

    def start_one(
        self, name: str, queue: str, procs: int, env: dict[str, str], debug: bool = False
    ) -> subprocess.Popen:
        self._specs[name] = (queue, procs, env, debug)
        return super().start_one(name, queue, procs, env, debug)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to worker ``name`` and its pool processes, and reap it."""
        proc = self.procs[name]
        kill_group(proc.pid, sig)
        proc.wait()

    def restart(self, name: str) -> subprocess.Popen:
        queue, procs, env, debug = self._specs[name]
        if self.procs[name].poll() is None:
            stop_process(self.procs[name], grace=10)
        return self.start_one(name, queue, procs, env, debug)


class Cluster:
    """Server + named workers. ``run`` submits a video and waits, calling ``on_tick`` meanwhile."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="fp-cluster-"))
        self.server = EmbeddedServer(self.tmp)
        self.server.start()
        self.env = {**FAST_RECOVERY, **(env or {})}
        self.workers = RestartableWorkers(self.server.url, ROOT, self.tmp / "logs", "fault")
        self.client = connect(self.server.url)
        #: chunks sent again because the run stopped moving (:func:`resend_waiting`)
        self.resent = 0

    def start(self, name: str, queue: str, procs: int = 1, **env: str) -> None:
        self.workers.start_one(name, queue, procs, {**self.env, **env})

    def start_all(self) -> None:
        for queue in ("detect", "embed", "writer"):
            self.start(queue, queue)

    def run(
        self,
        video: Path,
        settings: Settings,
        send: Send | None = None,
        on_tick: Callable[[RunStore], None] | None = None,
        timeout: float = 120,
    ) -> RunStore:
        store = RunStore(self.client, "fp", new_run_id())
        send = send or CelerySender(self.server.url)
        chunks = submit(store, probe(video), settings, send)
        deadline = time.monotonic() + timeout
        progress, moved_at = store.progress(), time.monotonic()
        while store.next_seq() < len(chunks):
            if on_tick is not None:
                on_tick(store)
            # As the dispatcher does (--resend-after): a message a killed worker took before
            # recording it is lost, and only sending its chunk again finishes the run.
            if store.progress() != progress:
                progress, moved_at = store.progress(), time.monotonic()
            elif time.monotonic() - moved_at > RESEND_AFTER_S:
                self.resent += resend_waiting(store, send)
                moved_at = time.monotonic()
            if time.monotonic() > deadline:
                logs = {p.name: p.read_text()[-2000:] for p in (self.tmp / "logs").glob("*.log")}
                raise AssertionError(f"run did not finish: {store.progress()} of {len(chunks)}; {logs}")
            time.sleep(0.05)
        return store

    def close(self) -> None:
        try:
            self.workers.stop()
        finally:
            self.server.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)


def identity_table(store: RunStore) -> dict[str, Any]:
    """Everything the run decided, field by field, for exact comparison: the writer's online
    identities, its face lines and tracking state, and the final pass's face lines."""
    from facepipe.distributed.writer import finalise

    bank = store.load_identities()
    counters = store.counters()
    tracker = store.load_tracker()
    return {
        "identities": [
            {
                "embedding": bank.embeddings[i].tobytes(),
                "centroid": bank.centroids[i].tobytes(),
                "refine_count": bank.refine_counts[i],
                "count": bank.counts[i],
            }
            for i in range(len(bank))
        ],
        "faces": [face.model_dump() for face in store.faces()],
        "tracker": None if tracker is None else tracker.model_dump(),
        "final": [face.to_json() for face in finalise(store).faces],
        "stats": {
            k: getattr(counters, k)
            for k in (
                "frames_sampled",
                "faces_detected",
                "faces_embedded",
                "online_identities",
                "cuts",
                "faces_suspect",
            )
        },
    }


def describe(table: dict[str, Any]) -> str:
    counts = [i["count"] for i in table["identities"]]
    return f"{len(counts)} identities, counts {counts}, {table['stats']['faces_embedded']} faces"
