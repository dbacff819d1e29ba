"""Writing output files so that a reader never sees half of one.

Every output (``summary.json``, ``faces.jsonl``, the banks, the report) is written next to
its final name and renamed into place: a crash, a full disk or a kill leaves the previous
file or none, never a truncated one that looks complete.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def replacing(target: Path, suffix: str = ".partial") -> Iterator[Path]:
    """A temporary path beside ``target`` to write; renamed onto ``target`` when the block ends
    well, removed when it raises."""
    partial = target.with_name(target.name + suffix)
    try:
        yield partial
        partial.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def write_atomically(target: Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` through a temporary file in the same folder, then rename."""
    with replacing(target) as partial, open(partial, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return target


def save_npz(target: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez_compressed`` (no pickles) to ``target``, through a temporary file and a rename."""
    with replacing(target, ".partial.npz") as partial:  # savez adds .npz to a name without it
        np.savez_compressed(partial, **arrays)
    return target
