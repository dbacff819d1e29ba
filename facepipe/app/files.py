"""Writing output files so that a reader never sees half of one.

Every output (``summary.json``, ``faces.jsonl``, the banks, the report) is written next to
its final name and renamed into place: a crash, a full disk or a kill leaves the previous
file or none, never a truncated one that looks complete.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np


def write_atomically(target: Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` through a temporary file in the same folder, then rename."""
    partial = target.with_name(target.name + ".partial")
    try:
        with open(partial, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        partial.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return target


def save_npz(target: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez_compressed`` (no pickles) to ``target``, through a temporary file and a rename."""
    partial = target.with_name(target.name + ".partial.npz")
    try:
        np.savez_compressed(partial, **arrays)
        partial.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return target
