"""How fast one writer applies faces: match-or-add through the real Writer and a real server.

    python bench/writer_bench.py [--sizes 100,1000,10000] [--chunks 20] [--rounds 5] [--faces-per-chunk 12]

For each identity-table size N a private valkey-server (facepipe.distributed.embedded.EmbeddedServer, in a
temporary folder, stopped in ``finally``) gets a run whose identity table already holds N
identities (their ``K:ident:ID`` hashes and the ``identities`` counter, as the writer
leaves them), then chunk records of ``--faces-per-chunk`` unit embeddings are stored
with ``RunStore.put_chunk`` and applied with ``Writer.apply_ready``:

* chunk 0 alone, cold (the writer has no cached identity table, so it reloads N hashes);
* then ``--rounds`` rounds of ``--chunks`` chunks, each round one timed ``apply_ready``
  call, warm (cached table; one WATCH/MULTI transaction per chunk). This is the writer's
  steady state, without Celery's own per-task cost (one message per chunk). The median
  round is reported, the best in brackets: the host is shared and noisy.

Two kinds of faces: ``random`` (random unit vectors, which all found new identities, as
the brief asks) and ``match`` (a random existing centroid plus noise, cosine ~0.7, so
every face joins an identity). The same faces go through a bare in-memory
``IdentityTable.match_or_add`` for comparison. Last, the capacity arithmetic: how many
detect / embed workers one writer keeps up with, from bench/results/results.json when present.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facepipe.clustering.identity import IdentityTable
from facepipe.distributed.embedded import EmbeddedServer
from facepipe.distributed.store import RunStore, connect
from facepipe.distributed.writer import Writer
from facepipe.records import DIM, ChunkRecord, DetectedFace, RunParams, VideoInfo
from facepipe.settings import Settings

BENCH = Path(__file__).resolve().parent
# The seed's clustering (explicit, so facepipe's moving defaults do not move the bench; the
# default --clustering tracks needs frame signatures these synthetic chunks do not have).
PARAMS = RunParams.build(
    Settings(clustering="seed", sim_thresh=0.27, refine_limit=30, merge_thresh=0.0, frame_step=15),
    VideoInfo("writer-bench", 10**9, 30.0, 1280, 720),
)
# Used only when bench/results/results.json is absent: faces per second of one worker process,
# measured on the 2-core bench machine (see bench/README.md).
FALLBACK_DET_FACES_PER_S = 20.0
FALLBACK_EMB_FACES_PER_S = 40.0


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def faces_for(kind: str, rng: np.random.Generator, centroids: np.ndarray, n: int) -> np.ndarray:
    if kind == "random":
        return unit_rows(rng, n)
    picks = centroids[rng.integers(0, len(centroids), n)]
    noisy = picks + 1.0 * unit_rows(rng, n)  # cos(face, centroid) ~ 0.7
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def populate(store: RunStore, centroids: np.ndarray, rng: np.random.Generator) -> None:
    """Write N identities the way the writer leaves them; counter ``identities`` = N."""
    store.create({"video": "writer-bench", "params": PARAMS, "chunks": 0, "status": "running"})
    refine = rng.integers(1, PARAMS.refine_limit + 1, len(centroids))
    pipe = store.r.pipeline(transaction=False)
    for i, c in enumerate(centroids):
        raw = c.tobytes()
        pipe.hset(
            store.ident_key(i),
            mapping={
                "embedding": raw,
                "centroid": raw,
                "refine_count": int(refine[i]),
                "count": int(refine[i]),
            },
        )
        if i % 1000 == 999:
            pipe.execute()
    pipe.hset(store.key("stats"), "identities", len(centroids))
    pipe.execute()


def record(seq: int, embeddings: np.ndarray) -> ChunkRecord:
    rec = ChunkRecord(
        seq=seq, start=seq * 120, stop=seq * 120 + 120, step=15, frames_read=120, frames_sampled=8
    )
    rec.faces = [
        DetectedFace(
            frame=seq * 120 + 15 * (i % 8),
            index=i // 8,
            bbox=[10.0, 20.0, 110.0, 140.0],
            det_score=0.9,
            aligned=True,
        )
        for i in range(len(embeddings))
    ]
    rec.set_embeddings(embeddings)
    return rec


def bench_writer(client, n: int, kind: str, chunks: int, rounds: int, per_chunk: int, seed: int) -> dict:
    """Cold first chunk, then ``rounds`` timed ``apply_ready`` calls of ``chunks`` chunks each."""
    rng = np.random.default_rng(seed)
    centroids = unit_rows(rng, n)
    store = RunStore(client, "wbench", f"{kind}-{n}")
    populate(store, centroids, rng)
    faces = faces_for(kind, rng, centroids, (1 + chunks * rounds) * per_chunk)

    writer = Writer()
    store.put_chunk(record(0, faces[:per_chunk]))
    t0 = time.perf_counter()
    assert writer.apply_ready(store, PARAMS) == 1
    cold = time.perf_counter() - t0
    rates = []
    for r in range(rounds):
        seqs = range(1 + r * chunks, 1 + (r + 1) * chunks)
        for seq in seqs:
            store.put_chunk(record(seq, faces[seq * per_chunk : (seq + 1) * per_chunk]))
        t0 = time.perf_counter()
        applied = writer.apply_ready(store, PARAMS)
        rates.append(chunks * per_chunk / (time.perf_counter() - t0))
        assert applied == chunks, applied
    counters = store.counters()
    store.delete()

    table = IdentityTable()
    for c in centroids:
        table.add(c, c, PARAMS.refine_limit, 1)
    table.match_or_add(faces[0], PARAMS.sim_thresh, PARAMS.refine_limit)
    memory = []
    for r in range(rounds):
        batch = faces[(1 + r * chunks) * per_chunk : (1 + (r + 1) * chunks) * per_chunk]
        t0 = time.perf_counter()
        for face in batch:
            table.match_or_add(face, PARAMS.sim_thresh, PARAMS.refine_limit)
        memory.append(len(batch) / (time.perf_counter() - t0))
    return {
        "identities_before": n,
        "faces": kind,
        "identities_after": counters.online_identities,
        "writer_cold_first_chunk_s": round(cold, 4),
        "writer_faces_per_s_rounds": [round(x, 1) for x in rates],
        "writer_ops_per_s": round(statistics.median(rates), 1),
        "writer_ops_per_s_best": round(max(rates), 1),
        "writer_ms_per_chunk": round(1000 * per_chunk / statistics.median(rates), 3),
        "memory_ops_per_s_rounds": [round(x, 1) for x in memory],
        "memory_ops_per_s": round(statistics.median(memory), 1),
        "memory_ops_per_s_best": round(max(memory), 1),
        "memory_us_per_op": round(1e6 / statistics.median(memory), 2),
    }


def worker_rates(path: Path) -> tuple[float, float, str]:
    """Faces/s of one detect and one embed worker process, from bench/results/results.json if there."""
    if path.is_file():
        results = json.loads(path.read_text())
        stage = results.get("stage_run", {}).get("monitor")
        if stage and stage.get("faces"):
            sums = stage["stage_sums_s"]
            det = sum(sums.get(k, 0.0) for k in ("decode", "blur", "detect", "align"))
            return (
                stage["faces"] / det,
                stage["faces"] / sums["embed"],
                f"{path.name}: {stage['faces']} faces over {det:.1f} s of detect-task time and "
                f"{sums['embed']:.1f} s of embed-task time (summed ChunkRecord.timings, instrumented B run)",
            )
    return (
        FALLBACK_DET_FACES_PER_S,
        FALLBACK_EMB_FACES_PER_S,
        "built-in fallback (no bench/results/results.json)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000", help="existing identities (comma list)")
    parser.add_argument("--chunks", type=int, default=20, help="chunks per timed round (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per measurement (default 5)")
    parser.add_argument("--faces-per-chunk", type=int, default=12, help="faces per chunk (default 12)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--run-results", type=Path, default=BENCH / "results" / "results.json", help="bench/run.py output"
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results" / "writer_results.json")
    parser.add_argument(
        "--det-faces-per-s", type=float, default=None, help="override one detect worker's rate"
    )
    parser.add_argument(
        "--emb-faces-per-s", type=float, default=None, help="override one embed worker's rate"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="fp-writer-bench-"))
    server = EmbeddedServer(workdir)
    rows = []
    try:
        server.start()
        client = connect(server.url)
        for n in sizes:
            for kind in ("random", "match"):
                row = bench_writer(client, n, kind, args.chunks, args.rounds, args.faces_per_chunk, args.seed)
                rows.append(row)
                print(
                    f"writer_bench: {n} ids, {kind}: {row['writer_ops_per_s']:.0f} faces/s", file=sys.stderr
                )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    lines = [
        f"{args.rounds} timed rounds of {args.chunks} chunks x {args.faces_per_chunk} faces per row; "
        f"Writer.apply_ready against valkey on a unix socket (appendonly yes, as embedded). "
        f"Median of the rounds (best in brackets).",
        "",
        "| identities before | faces | ids after | cold first chunk, s | writer ms/chunk | writer faces/s "
        "| in-memory faces/s | in-memory µs/face |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['identities_before']:,} | {r['faces']} | {r['identities_after']:,} | "
            f"{r['writer_cold_first_chunk_s']:.3f} | {r['writer_ms_per_chunk']:.2f} | "
            f"{r['writer_ops_per_s']:,.0f} ({r['writer_ops_per_s_best']:,.0f}) | "
            f"{r['memory_ops_per_s']:,.0f} ({r['memory_ops_per_s_best']:,.0f}) | "
            f"{r['memory_us_per_op']:.1f} |"
        )
    det_rate, emb_rate, source = worker_rates(args.run_results)
    if args.det_faces_per_s:
        det_rate, source = args.det_faces_per_s, "--det-faces-per-s / --emb-faces-per-s"
    if args.emb_faces_per_s:
        emb_rate, source = args.emb_faces_per_s, "--det-faces-per-s / --emb-faces-per-s"
    lines += ["", f"Capacity arithmetic (worker rates from {source}):", ""]
    lines.append(
        f"- one detect worker produces {det_rate:.1f} faces/s; one embed worker embeds {emb_rate:.1f} faces/s"
    )
    capacity = []
    for r in rows:
        ops = r["writer_ops_per_s"]  # median round: a writer on a busy host
        det_workers = ops / det_rate
        emb_workers = ops / emb_rate
        capacity.append(
            {
                **r,
                "detect_workers_served": round(det_workers, 1),
                "embed_workers_served": round(emb_workers, 1),
            }
        )
        lines.append(
            f"- {r['identities_before']:,} ids, {r['faces']} faces: {ops:,.0f} faces/s / {det_rate:.1f} = "
            f"**{det_workers:,.0f} detect workers** (and {ops:,.0f} / {emb_rate:.1f} = "
            f"{emb_workers:,.0f} embed workers) "
            f"per writer"
        )
    table = "\n".join(lines)
    args.results.write_text(
        json.dumps(
            {
                "chunks_per_round": args.chunks,
                "rounds": args.rounds,
                "faces_per_chunk": args.faces_per_chunk,
                "rows": capacity,
                "det_faces_per_s": det_rate,
                "emb_faces_per_s": emb_rate,
                "rates_from": source,
                "table_markdown": table,
            },
            indent=2,
        )
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
