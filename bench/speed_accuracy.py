"""What the speed options do to accuracy, on every label set: faces found, identities, BCubed F.

    python bench/speed_accuracy.py [--cache /tmp/facepipe-accuracy-speed]
                                   [--json bench/results/speed_accuracy.json]
                                   [--sets slideshow tv ...] [--no-tv-labels]

Variants (detector input, backend, precision), each run over every label set:

* ``seed``: 640x640, ONNX Runtime fp32 (the seed's detector input and runtime);
* ``auto-ort``: ``--det-input auto`` (640x384 for 1280x720), ONNX Runtime fp32;
* ``auto-ov``: ``--det-input auto``, OpenVINO fp32 (the new default);
* ``auto-bf16``: ``--det-input auto``, OpenVINO bf16 (``--precision bf16``).

1. The label sets of ``bench/labelsets.py`` (photos, clips, the TV edit; frame step 3 and the
   step-15 view): each variant detects and embeds the set's video in this process with the
   pipeline's own functions (``detect_chunk``/``embed_record`` over the run's chunk plan), its
   faces are labelled by labelsets' rules (the same reference embeddings for every variant),
   and clustered as ``facepipe run`` clusters by default (online at ``--sim-thresh`` 0.40, then
   the merge pass at 0.25). Scores from ``facepipe.clustering.evaluate``.
2. The hand-labelled real TV clips (``../shared/data/labelled/tv``, labels for
   ``--frame-step 3 --min-face 40``): a real ``facepipe run`` per variant, scored with
   ``facepipe eval``.

Videos and detections go to their own cache (not labelsets' ``/tmp/facepipe-accuracy``, which
other work uses). Prints markdown tables and writes ``bench/results/speed_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import labelsets  # noqa: E402

from facepipe.app.scores import evaluate_run  # noqa: E402
from facepipe.app.summary import Summary  # noqa: E402
from facepipe.clustering.evaluate import evaluate  # noqa: E402
from facepipe.records import DIM  # noqa: E402

CACHE = Path("/tmp/facepipe-accuracy-speed")
#: name -> (det_input, backend, precision, extra facepipe flags)
VARIANTS = {
    "seed": ("640x640", "onnxruntime", "fp32"),
    "auto-ort": ("auto", "onnxruntime", "fp32"),
    "auto-ov": ("auto", "openvino", "fp32"),
    "auto-bf16": ("auto", "openvino", "bf16"),
}
SIM_THRESH, MERGE_THRESH, REFINE_LIMIT = 0.40, 0.25, 30
TV_CLIPS = ("debate_clip", "talk_show_montage")


def detect_variant(video: Path, step: int, variant: str) -> dict[str, np.ndarray]:
    """Every face ``facepipe run VIDEO --frame-step STEP`` would find with the variant's options."""
    from facepipe.inference.chunk import detect_chunk, embed_record
    from facepipe.inference.detector import FaceDetector
    from facepipe.inference.embedder import FaceEmbedder
    from facepipe.inference.files import resolve_model
    from facepipe.media.plan import plan
    from facepipe.media.probe import probe
    from facepipe.records import RunParams
    from facepipe.settings import Settings

    det_input, backend, precision = VARIANTS[variant]
    settings = Settings(frame_step=step, det_input=det_input, backend=backend, precision=precision)
    info = probe(video)
    planned = plan(info, settings.decoder, step, settings.chunk_size)
    params = RunParams.build(settings, info, planned.decoder)
    detector = FaceDetector(resolve_model("detector"), 1, "cpu", backend, precision)
    embedder = FaceEmbedder(resolve_model("embedder"), 1, "cpu", backend, precision)
    frames, boxes, embs = [], [], []
    for chunk in planned.chunks:
        record = embed_record(detect_chunk(chunk, params, detector), embedder, False)
        matrix = record.embedding_matrix()
        for i, face in enumerate(record.faces):
            frames.append(face.frame)
            boxes.append(face.bbox)
            embs.append(matrix[i])
    return {
        "frames": np.array(frames, dtype=np.int64),
        "bboxes": np.array(boxes, dtype=np.float32).reshape(-1, 4),
        "embeddings": np.array(embs, dtype=np.float32).reshape(-1, DIM),
        "det_input": np.array(params.det_input),
    }


def cluster(frames: np.ndarray, embeddings: np.ndarray) -> list[int]:
    """facepipe's default clustering: online match-or-add, then the merge pass."""
    from facepipe.clustering.identity import IdentityTable
    from facepipe.clustering.people import merge_run

    table = IdentityTable()
    online = [table.match_or_add(e, SIM_THRESH, REFINE_LIMIT).identity for e in embeddings]
    if len(table) < 2:
        return online
    mapping = merge_run(list(frames), online, embeddings, MERGE_THRESH, n_identities=len(table))
    return [int(mapping[i]) for i in online]


def score_set(name: str, faces: dict[str, np.ndarray], refs: dict, step: int) -> dict[str, Any]:
    labels, _, _ = labelsets.label_faces(faces, labelsets.plan_for(name), refs)
    keep = np.flatnonzero(faces["frames"] % step == 0)
    frames, embs = faces["frames"][keep], faces["embeddings"][keep]
    truth = [labels[i] or None for i in keep]
    predicted = cluster(frames, embs)
    scores = evaluate(predicted, truth)
    return {
        "faces": len(keep),
        "labelled": scores["faces"],
        "identities": len(set(predicted)),
        "found": scores["found"],
        "true": scores["true"],
        "bcubed_f": round(scores["bcubed"]["f1"], 4),
        "pairwise_f": round(scores["pairwise"]["f1"], 4),
    }


def label_sets(cache: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    refs = labelsets.load_refs(cache)
    for name in names:
        video = labelsets.video_for(name, cache)
        if name in labelsets.RENDERED and not video.exists():
            cache.mkdir(parents=True, exist_ok=True)
            print(f"speed_accuracy: rendering {name}", file=sys.stderr, flush=True)
            labelsets.render(video, labelsets.plan_for(name))
        for variant in VARIANTS:
            path = cache / f"{name}.{variant}.npz"
            if path.is_file():
                with np.load(path) as data:
                    faces = {k: data[k] for k in data.files}
            else:
                started = time.perf_counter()
                faces = detect_variant(video, labelsets.STEP, variant)
                np.savez_compressed(path, **faces)
                print(
                    f"speed_accuracy: {name} {variant}: {len(faces['frames'])} faces "
                    f"({time.perf_counter() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            for step in (3, 15):
                key = f"{name}@{step}"
                results.setdefault(key, {})[variant] = {
                    **score_set(name, faces, refs, step),
                    "det_input": "x".join(map(str, faces["det_input"].tolist())),
                }
    return results


def tv_labels(workdir: Path) -> dict[str, dict[str, Any]]:
    """A real ``facepipe run`` per variant on each hand-labelled TV clip, scored against the labels."""
    results: dict[str, dict[str, Any]] = {}
    for clip in TV_CLIPS:
        video = labelsets.SHARED / "videos" / f"{clip}.mp4"
        labels = labelsets.SHARED / "labelled" / "tv" / f"{clip}.labels.json"
        for variant, (det_input, backend, precision) in VARIANTS.items():
            out = workdir / f"{clip}.{variant}"
            cmd = [str(Path(sys.executable).with_name("facepipe")), "run", str(video), "--out", str(out)]
            cmd += ["--frame-step", "3", "--min-face", "40", "--det-input", det_input]
            cmd += ["--backend", backend, "--precision", precision, "--no-progress"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"speed_accuracy: {' '.join(cmd)} failed: {done.stderr[-500:]}")
            scores = evaluate_run(out, labels)
            summary = Summary.read(out / "summary.json")
            results.setdefault(f"tv:{clip}@3", {})[variant] = {
                "faces": summary.faces_embedded,
                "labelled": scores["faces"],
                "identities": summary.identities,
                "found": scores["found"],
                "true": scores["true"],
                "bcubed_f": round(scores["bcubed"]["f1"], 4),
                "pairwise_f": round(scores["pairwise"]["f1"], 4),
                "det_input": "x".join(map(str, summary.params["det_input"])),
            }
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(VARIANTS)
    lines = [
        "faces found / identities (found of true people among labelled faces) / BCubed F; "
        "Δ = BCubed F minus the seed variant's",
        "",
        "| label set | " + " | ".join(names) + " | max |Δ| bf16 vs fp32 (auto-ov) |",
        "|---" * (len(names) + 2) + "|",
    ]
    for key, by_variant in results.items():
        cells = []
        for n in names:
            r = by_variant[n]
            delta = r["bcubed_f"] - by_variant["seed"]["bcubed_f"]
            cells.append(
                f"{r['faces']} / {r['identities']} ({r['found']} of {r['true']}) / {r['bcubed_f']:.4f}"
                + (f" (Δ {delta:+.4f})" if n != "seed" else "")
            )
        bf = abs(by_variant["auto-bf16"]["bcubed_f"] - by_variant["auto-ov"]["bcubed_f"])
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {bf:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"videos and detections (default {CACHE})")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "speed_accuracy.json")
    parser.add_argument("--sets", nargs="*", default=list(labelsets.SETS), choices=labelsets.SETS)
    parser.add_argument("--no-tv-labels", action="store_true", help="skip the hand-labelled TV clips")
    args = parser.parse_args(argv)
    if not (labelsets.SHARED / "videos").is_dir():
        raise SystemExit(f"speed_accuracy: shared data not found at {labelsets.SHARED}")
    results = label_sets(args.cache, args.sets)
    if not args.no_tv_labels and (labelsets.SHARED / "labelled" / "tv").is_dir():
        results.update(tv_labels(args.cache / "runs"))
    text = table(results)
    args.json.write_text(json.dumps({"variants": VARIANTS, "results": results, "table": text}, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
