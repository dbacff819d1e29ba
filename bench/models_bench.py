"""Single-thread model timings per backend and precision, through facepipe's own sessions.

    python bench/models_bench.py [--repeat 40] [--json bench/results/models_results.json]

For SCRFD-500M at 640x640 and 640x384 and ArcFace (w600k_mbf) on a batch of 8, each session
as :func:`facepipe.inference.runtimes.make_session` builds it (one thread): ONNX Runtime, OpenVINO fp32,
OpenVINO bf16 (where the CPU has native bf16). Random inputs; the median and the best of
``--repeat`` calls, after a warm-up call. Also how far OpenVINO's outputs are from ONNX Runtime's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "SCRFD-500M 640x640": ("detector", [1, 3, 640, 640]),
    "SCRFD-500M 640x384": ("detector", [1, 3, 384, 640]),
    "ArcFace mbf, batch of 8": ("embedder", [8, 3, 112, 112]),
}


def main(argv: list[str] | None = None) -> int:
    from facepipe.inference.files import resolve_model
    from facepipe.inference.runtimes import OpenVinoSession, Runtime, cpu_capabilities, make_session

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "models_results.json")
    args = parser.parse_args(argv)
    runtimes = {
        "ONNX Runtime": Runtime("onnxruntime", "fp32", "CPU"),
        "OpenVINO fp32": Runtime("openvino", "fp32", "CPU"),
    }
    if "BF16" in cpu_capabilities():
        runtimes["OpenVINO bf16"] = Runtime("openvino", "bf16", "CPU")
    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}
    for case, (kind, shape) in CASES.items():
        feed = rng.uniform(-1, 1, size=shape).astype(np.float32)
        reference = None
        for name, runtime in runtimes.items():
            session = make_session(resolve_model(kind), 1, "cpu", runtime)
            if isinstance(session, OpenVinoSession) and kind == "detector":
                session = session.reshaped(shape[3], shape[2])  # SCRFD's static per-size session
            feeds = {session.get_inputs()[0].name: feed}
            outputs = session.run(None, feeds)
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                session.run(None, feeds)
                times.append(time.perf_counter() - started)
            row = {
                "median_ms": round(1000 * statistics.median(times), 2),
                "best_ms": round(1000 * min(times), 2),
            }
            if reference is None:
                reference = outputs
            else:
                row["max_abs_diff_vs_ort"] = float(
                    max(np.abs(a - b).max() for a, b in zip(outputs, reference, strict=True))
                )
            results.setdefault(case, {})[name] = row
    names = list(runtimes)
    lines = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for case, rows in results.items():
        base = rows["ONNX Runtime"]["median_ms"]
        cells = [
            f"{r['median_ms']:.1f} ms" + ("" if n == "ONNX Runtime" else f" ({base / r['median_ms']:.2f}x)")
            for n, r in rows.items()
        ]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    args.json.write_text(json.dumps({"results": results, "table": text}, indent=2))
    print(text)
    for case, rows in results.items():
        for name, row in rows.items():
            if "max_abs_diff_vs_ort" in row:
                print(
                    f"{case}, {name}: outputs differ from ONNX Runtime's by at most "
                    f"{row['max_abs_diff_vs_ort']:.2g}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
