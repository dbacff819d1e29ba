"""Writing output files so that a reader never sees half of one.

Every output (``summary.json``, ``faces.jsonl``, the banks, the report, the series' files) is
written to a hidden temporary file in its folder (``.NAME.partial``), flushed to the disk, and
renamed into place, and the folder's entry is flushed too: a crash, a full disk or a kill
leaves the previous file or none, never a truncated one that looks complete. A file left by a
kill between the write and the rename is hidden and named ``.partial``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial")


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write; renamed onto ``target`` when the block ends
    well (and the folder's entry flushed), removed when it raises."""
    partial = _partial(target)
    try:
        yield partial
        partial.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    _sync_folder(target.parent)


def write_with(target: Path, write: Callable[[BinaryIO], object]) -> Path:
    """``write(file)`` into a temporary file beside ``target``, flushed, then renamed to it."""
    with replacing(target) as partial, open(partial, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    return target


def write_atomically(target: Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` through a temporary file in the same folder, then rename."""
    return write_with(target, lambda fh: fh.write(data))


def save_npz(target: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez_compressed`` (no pickles) to ``target``, through a temporary file and a rename."""
    return write_with(target, lambda fh: np.savez_compressed(fh, **arrays))


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut after it keeps the new file)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
