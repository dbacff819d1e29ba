"""How big a chunk record is, before and after embedding, and its Celery message.

``detect_chunk`` and ``embed_record`` (the functions the tasks call) run in this process on
evenly spaced chunks of the video.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any


def message_sizes(args: argparse.Namespace, samples: int = 12) -> dict[str, Any]:
    import base64

    if getattr(args, "code_dir", None):
        sys.path.insert(0, str(args.code_dir))
    from facepipe.inference.chunk import detect_chunk, embed_record
    from facepipe.inference.detector import FaceDetector
    from facepipe.inference.embedder import FaceEmbedder
    from facepipe.inference.files import resolve_model
    from facepipe.media.plan import plan
    from facepipe.media.probe import probe
    from facepipe.records import RunParams
    from facepipe.settings import load_settings

    flags = args.contenders[0].flags
    chunk_size = int(flags[flags.index("--chunk-size") + 1]) if "--chunk-size" in flags else 8
    settings = load_settings(frame_step=args.frame_step, chunk_size=chunk_size)
    info = probe(args.video)
    planned = plan(info, settings.decoder, args.frame_step, chunk_size)
    params = RunParams.build(settings, info, planned.decoder)
    chunks = planned.chunks
    picks = [
        chunks[round(i * (len(chunks) - 1) / max(1, samples - 1))] for i in range(min(samples, len(chunks)))
    ]
    detector = FaceDetector(resolve_model("detector"), 0)
    embedder = FaceEmbedder(resolve_model("embedder"), 0)
    rows = []
    for chunk in picks:
        record = detect_chunk(chunk, params, detector)
        detect_bytes = len(record.to_json())
        crop_bytes = sum(len(c) for c in record.crops)
        embed_record(record, embedder, keep_crops=False)
        stored_bytes = len(record.to_json())
        # Celery's Redis transport base64-encodes the JSON body inside a JSON envelope.
        body = json.dumps([["RUN_ID", chunk.seq, "facepipe", {}], {}, {}]).encode()
        envelope = len(base64.b64encode(body)) + 1100
        rows.append(
            {
                "seq": chunk.seq,
                "faces": len(record.faces),
                "detect_to_embed_record_bytes": detect_bytes,
                "crop_base64_bytes": crop_bytes,
                "embed_to_writer_record_bytes": stored_bytes,
                "celery_embed_message_bytes_est": envelope + (detect_bytes * 4 + 2) // 3,
            }
        )
    rows.sort(key=lambda r: r["faces"])
    typical = rows[len(rows) // 2]
    with_faces = [r for r in rows if r["faces"]]
    per_face = (
        statistics.median(r["crop_base64_bytes"] / r["faces"] for r in with_faces) if with_faces else None
    )
    return {
        "chunk_size": chunk_size,
        "typical": typical,
        "samples": rows,
        "crop_base64_bytes_per_face": per_face,
    }
