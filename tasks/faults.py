"""Test hook: SIGKILL a worker once, after a chunk's work and before its ack.

Connected to Celery's ``task_postrun`` signal only when ``FACEPIPE_FAULT_INJECT`` lists
points such as ``detect:3,write:7`` (stage name, chunk seq). ``task_postrun`` fires after
the task returned and before an ``acks_late`` message is acknowledged, so the message is
redelivered: exactly the crash the fault tests need. A Redis marker makes each point fire
once per run. Never set the variable in production.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from celery.signals import task_postrun

from facepipe.distributed.stages import STAGES
from facepipe.distributed.store import RunStore

log = logging.getLogger("facepipe.tasks")


def install_fault_injection(spec: str) -> None:
    points = {point.strip() for point in spec.split(",") if point.strip()}
    stage_of = {stage.task: stage.name for stage in STAGES}

    def kill_after_work(
        sender: Any = None, args: Any = None, retval: Any = None, state: str = "", **_: Any
    ) -> None:
        from tasks.base import ALREADY_APPLIED, ALREADY_STORED, BROKER_FULL, LOST, REJECTED, _client

        if (
            state != "SUCCESS"
            or not isinstance(retval, str)
            or retval.startswith((REJECTED, ALREADY_APPLIED, ALREADY_STORED, LOST, BROKER_FULL))
        ):
            return
        message = args[0] if args else {}
        point = f"{stage_of.get(getattr(sender, 'name', ''))}:{message['chunk']['seq']}"
        if point not in points:
            return
        store = RunStore(_client(sender.app.conf.broker_url), message["prefix"], message["run_id"])
        if store.mark_once(point):
            log.warning("fault injection: SIGKILL after %s (work done, not acknowledged)", point)
            os.kill(os.getpid(), signal.SIGKILL)

    task_postrun.connect(kill_after_work, weak=False)
