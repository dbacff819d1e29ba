"""The writer's decision for one chunk, without Redis: match-or-add, face lines, counters."""

from __future__ import annotations

import numpy as np

from facepipe.clustering.decide import RunState, decide
from facepipe.clustering.identity import IdentityTable
from facepipe.distributed.writer import crops_to_save, read_record
from facepipe.records import DIM, ChunkRecord, DetectedFace, RunParams, VideoInfo
from facepipe.settings import Settings
from tests.reference import reference_cluster

PARAMS = RunParams.build(Settings(clustering="seed", frame_step=2), VideoInfo("/v.mp4", 100, 10.0, 640, 480))


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _record(seq: int, embeddings: np.ndarray) -> ChunkRecord:
    record = ChunkRecord(
        seq=seq,
        start=seq * 8,
        stop=seq * 8 + 8,
        step=2,
        frames_read=7,
        frames_sampled=4,
        timings={"detect": 0.5},
    )
    record.faces = [
        DetectedFace(
            frame=seq * 8 + 2 * (i % 4), index=i // 4, bbox=[0, 0, 70, 90], det_score=0.9, aligned=True
        )
        for i in range(len(embeddings))
    ]
    record.set_embeddings(embeddings)
    return record


def test_decisions_over_chunks_equal_the_plain_reference() -> None:
    rng = np.random.default_rng(3)
    people = rng.normal(size=(4, DIM))
    faces = _unit(people[rng.integers(0, 4, 40)] + 0.7 * rng.normal(size=(40, DIM)))
    bank = IdentityTable()
    lines = []
    for seq in range(5):
        record = _record(seq, faces[seq * 8 : seq * 8 + 8])
        commit = decide(RunState(bank, None), record, PARAMS)
        assert crops_to_save(record, commit, PARAMS) == [] and commit.seq == seq and commit.lost is None
        assert commit.counters.faces_embedded == 8 and commit.counters.chunks_applied == 1
        assert commit.timings == {"detect": 0.5}
        for identity, (_, centroid, refine_count, count) in commit.identities.items():
            np.testing.assert_array_equal(centroid, bank.centroids[identity])
            assert (refine_count, count) == (bank.refine_counts[identity], bank.counts[identity])
        lines += commit.lines
    ref = reference_cluster(faces, 0.27, PARAMS.refine_limit)
    assert [line.identity for line in lines] == ref["assignments"]
    assert [line.time_s for line in lines[:4]] == [0.0, 0.2, 0.4, 0.6]
    founders = sum(line.similarity is None for line in lines)
    assert founders == len(bank) == len(ref["identities"])


def test_a_lost_chunk_counts_its_frames_and_adds_nothing() -> None:
    bank = IdentityTable()
    commit = decide(RunState(bank, None), ChunkRecord.lost(2, 16, 24, 2, "OSError: gone"), PARAMS)
    assert commit.lost == {"seq": 2, "frames": [16, 24], "reason": "OSError: gone"}
    assert commit.counters.nonzero() == {"chunks_failed": 1, "frames_lost": 4}
    assert commit.lines == [] and len(bank) == 0


def test_an_unreadable_stored_result_becomes_a_lost_chunk_keeping_its_range() -> None:
    damaged = read_record(b'{"seq": 5, "start": 40, "stop": 48, "step": 2, "faces": "??"}', 5)
    assert damaged.failed and damaged.failed.startswith("stored result unreadable")
    assert (damaged.seq, damaged.start, damaged.stop) == (5, 40, 48)
    garbage = read_record(b"\x00not json", 6)
    assert garbage.failed and (garbage.seq, garbage.start, garbage.stop) == (6, 0, 0)
