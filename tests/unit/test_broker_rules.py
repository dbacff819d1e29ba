"""The small rules behind riding out broker trouble: what counts as a full broker, when there is
room, who holds a run's lease, and what a killed dispatcher looks like from its own host."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from facepipe.distributed.store import (
    RESERVE_SHARE,
    BrokerDown,
    BrokerFull,
    BrokerMemory,
    Holder,
    full_message,
    is_full,
    redact,
    this_machine,
)


def test_a_full_broker_is_recognised_through_the_errors_that_wrap_it() -> None:
    oom = redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
    assert is_full(oom) and is_full(BrokerFull("x"))
    try:  # as kombu or Celery would wrap it
        try:
            raise oom
        except redis.ResponseError as inner:
            raise RuntimeError("publish failed") from inner
    except RuntimeError as wrapped:
        assert is_full(wrapped)
    assert is_full(redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'."))
    assert not is_full(redis.ConnectionError("Connection refused")) and not is_full(BrokerDown("down"))
    assert not is_full(ValueError("OOM is a word"))


def test_room_leaves_the_reserve_to_the_queues() -> None:
    unlimited = BrokerMemory(used=10**9, limit=0, policy="noeviction", refused=0)
    assert unlimited.headroom() is None and not unlimited.full
    limit = 100_000_000
    edge = int(limit * (1 - RESERVE_SHARE))
    assert BrokerMemory(edge - 1, limit, "noeviction", 0).headroom() == 1
    assert not BrokerMemory(edge - 1, limit, "noeviction", 0).full
    assert BrokerMemory(edge, limit, "noeviction", 0).full  # Redis itself would still take 10 MB
    assert BrokerMemory(limit + 5, limit, "noeviction", 0).headroom() < 0


def test_the_full_message_names_the_remedy_and_hides_the_password() -> None:
    text = full_message("redis://:s3cret@queue:6379/0")
    assert "s3cret" not in text and redact("rediss://:pw@h:1/0") == "rediss://:***@h:1/0"
    for remedy in ("facepipe runs", "facepipe delete RUN_ID", "--keep-hours", "maxmemory", "facepipe resume"):
        assert remedy in text, remedy
    assert "\n" not in text


def test_a_lease_names_its_holder_and_a_dead_local_one_is_gone() -> None:
    mine = Holder.parse(f"{this_machine()} {os.getpid()} abcd".encode())
    assert mine is not None and mine.pid == os.getpid() and not mine.gone()
    assert str(mine) == f"{this_machine().split()[0]} pid {os.getpid()}"
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = Holder.parse(f"{this_machine()} {int(done.stdout)} abcd")
    assert dead is not None and dead.gone()  # a killed dispatcher of this host: resumable at once
    elsewhere = Holder.parse(f"otherhost 0123abcd {int(done.stdout)} abcd")
    assert elsewhere is not None and not elsewhere.gone()  # another host's: only its lease's expiry tells
    assert Holder.parse(None) is None
    assert Holder.parse(b"garbage") == Holder("?", "?", 0)
