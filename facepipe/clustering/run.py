"""A run's clustering in one process: the writer's decisions chunk after chunk, then the final pass.

:func:`cluster_records` is what the distributed writer computes, without Redis: every chunk
record in order through :func:`~facepipe.clustering.decide.decide`, then
:func:`~facepipe.clustering.final.final_identities`. Any number of workers, any timing and
any fault must give this result; :func:`facepipe.process_video`, the accuracy bench
(``bench/accuracy.py``) and the tests' reference (``tests/reference.py``) all call it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from facepipe.clustering.decide import RunState, decide
from facepipe.clustering.final import FinalIdentities, final_identities
from facepipe.records import DIM, ChunkRecord, FaceLine, RunParams


def cluster_records(records: Iterable[ChunkRecord], params: RunParams) -> FinalIdentities:
    """The final identities of a run whose embedded chunk records are ``records``, in chunk order
    (``seq`` 0, 1, ...: the order the writer applies them; a failed record is a lost chunk)."""
    state = RunState.start(params)
    lines: list[FaceLine] = []
    embeddings: list[np.ndarray] = []
    for record in records:
        commit = decide(state, record, params)
        lines += commit.lines
        embeddings.append(commit.embeddings)
    matrix = np.concatenate(embeddings) if embeddings else np.zeros((0, DIM), np.float32)
    return final_identities(lines, matrix, state.table, params)
