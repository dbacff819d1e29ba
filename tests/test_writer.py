"""The writer against a real server: order, exactly-once, failures, concurrent writers."""

from __future__ import annotations

import secrets
import threading

import numpy as np
import pytest

from facepipe.distributed.store import RunStore, connect
from facepipe.distributed.writer import Writer
from facepipe.records import ChunkRecord, DetectedFace, RunParams, VideoInfo
from facepipe.settings import Settings
from tests.reference import reference_cluster

PARAMS = RunParams.build(
    Settings(clustering="seed", frame_step=1), VideoInfo("/videos/none.mp4", 1000, 10.0, 640, 480)
)


def _faces(seed: int, people: int = 5, total: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 512))
    picks = rng.integers(0, people, size=total)
    faces = centres[picks] + 0.6 * rng.normal(size=(total, 512))
    return (faces / np.linalg.norm(faces, axis=1, keepdims=True)).astype(np.float32)


def _records(faces: np.ndarray, per_chunk: int = 7) -> list[ChunkRecord]:
    records = []
    for seq, start in enumerate(range(0, len(faces), per_chunk)):
        block = faces[start : start + per_chunk]
        record = ChunkRecord(
            seq=seq,
            start=start,
            stop=start + per_chunk,
            step=1,
            frames_read=per_chunk,
            frames_sampled=per_chunk,
        )
        record.faces = [
            DetectedFace(frame=start + i, index=0, bbox=[0, 0, 80, 80], det_score=0.9, aligned=True)
            for i in range(len(block))
        ]
        record.set_embeddings(block)
        records.append(record)
    return records


@pytest.fixture()
def store(redis_client) -> RunStore:
    s = RunStore(redis_client, "fptest", secrets.token_hex(4))
    s.create({"params": PARAMS, "chunks": 0})
    yield s
    s.delete()


def _table(store: RunStore) -> list[tuple]:
    bank = store.load_identities()
    return [
        (bank.counts[i], bank.refine_counts[i], bank.centroids[i].round(5).tobytes())
        for i in range(len(bank))
    ]


def test_chunks_arriving_out_of_order_are_applied_in_order(store: RunStore) -> None:
    faces = _faces(1)
    records = _records(faces)
    writer = Writer()
    order = [3, 1, 0, 2, 5, 4, 8, 6, 7]
    applied_after = []
    for seq in order:
        store.put_chunk(records[seq])
        writer.apply_ready(store, PARAMS)
        applied_after.append(store.next_seq())
    # Nothing is applied while chunk 0 is missing; then everything contiguous at once.
    assert applied_after == [0, 0, 2, 4, 4, 6, 6, 7, 9]
    ref = reference_cluster(faces, 0.27, 30)
    assert [f.identity for f in store.faces()] == ref["assignments"]
    assert store.counters().faces_embedded == len(faces)
    bank = store.load_identities()
    assert bank.counts == [i["count"] for i in ref["identities"]]
    np.testing.assert_allclose(
        bank.centroids, np.stack([i["centroid"] for i in ref["identities"]]), atol=1e-5
    )
    assert store.r.keys(store.key("chunk:*")) == []  # applied results are removed


def test_a_chunk_delivered_twice_is_applied_once(store: RunStore) -> None:
    faces = _faces(2, total=21)
    records = _records(faces)
    writer = Writer()
    for record in records:
        store.put_chunk(record)
        store.put_chunk(record)  # duplicate before apply
        writer.apply_ready(store, PARAMS)
        writer.apply_ready(store, PARAMS)
        assert store.put_chunk(record) is False  # late duplicate dropped
        writer.apply_ready(store, PARAMS)
    counters = store.counters()
    assert counters.faces_embedded == 21 and counters.chunks_applied == 3
    assert sum(store.load_identities().counts) == 21
    assert len(store.faces()) == 21


def test_a_failed_chunk_is_recorded_and_skipped(store: RunStore) -> None:
    faces = _faces(3, total=21)
    records = _records(faces)
    failed = ChunkRecord.lost(1, 7, 14, 1, "OSError: cannot read frames")
    writer = Writer()
    store.put_chunk(records[0])
    store.put_chunk(failed)
    store.put_chunk(records[2])
    assert writer.apply_ready(store, PARAMS) == 3
    assert store.failed() == [{"seq": 1, "frames": [7, 14], "reason": "OSError: cannot read frames"}]
    counters = store.counters()
    assert counters.chunks_failed == 1 and counters.frames_lost == 7 and counters.faces_embedded == 14
    kept = np.concatenate([faces[:7], faces[14:]])
    assert [f.identity for f in store.faces()] == reference_cluster(kept, 0.27, 30)["assignments"]


def test_two_writers_racing_give_the_single_writer_result(server, store: RunStore) -> None:
    faces = _faces(4, total=140)
    records = _records(faces, per_chunk=5)
    stores = [RunStore(connect(server.url), store.prefix, store.run_id) for _ in range(2)]
    writers = [Writer(), Writer()]
    for record in records:
        store.put_chunk(record)

    def work(i: int) -> None:
        for _ in range(50):
            writers[i].apply_ready(stores[i], PARAMS)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.next_seq() == len(records)
    ref = reference_cluster(faces, 0.27, 30)
    assert [f.identity for f in store.faces()] == ref["assignments"]
    assert store.counters().faces_embedded == 140
    # A single writer replaying the same chunks produces the very same table.
    single = RunStore(store.r, "fptest", secrets.token_hex(4))
    single.create({"params": PARAMS})
    try:
        for record in records:
            single.put_chunk(record)
        Writer().apply_ready(single, PARAMS)
        assert _table(single) == _table(store)
    finally:
        single.delete()


def test_runs_do_not_touch_each_other(redis_client) -> None:
    a = RunStore(redis_client, "fptest", "run-a-" + secrets.token_hex(2))
    b = RunStore(redis_client, "fptest", "run-b-" + secrets.token_hex(2))
    a.create({"params": PARAMS})
    b.create({"params": PARAMS})
    try:
        rec = _records(_faces(5, total=7))[0]
        a.put_chunk(rec)
        Writer().apply_ready(a, PARAMS)
        assert a.counters().faces_embedded == 7
        assert b.counters().faces_embedded == 0 and b.next_seq() == 0
        a.delete()
        assert redis_client.keys(a.base + ":*") == []
        assert b.params() == PARAMS
    finally:
        a.delete()
        b.delete()
