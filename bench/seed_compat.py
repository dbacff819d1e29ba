"""Does facepipe still reproduce the seed? faces.jsonl of the seed's code against today's, per clip.

    python bench/seed_compat.py [--rev e7f78c6] [--json bench/results/seed_compat.json]

For each clip of ``../shared/data/videos`` (at the frame step the tests use), ``facepipe run``
of git revision ``--rev`` (its facepipe/, tasks/ and celeryconfig.py from ``git archive``, with
its own defaults) against today's code with:

* ``compat``: ``--backend onnxruntime --det-input 640x640 --decoder opencv --clustering online``,
  the seed's runtime, detector input, decoding and clustering (``--clustering online`` is what
  the revision's defaults did: online match-or-add, then the merge pass): must give faces.jsonl
  **byte for byte**;
* ``pyav-ort``: the same with today's decoding;
* ``openvino``: ``--backend openvino --det-input 640x640 --clustering online`` (OpenVINO fp32);
* ``defaults``: today's defaults (OpenVINO fp32, ``--det-input auto``, keyframe decoding,
  ``--clustering tracks``: other identities by design, so only agreement is meaningful).

Each is compared with the seed's faces.jsonl: bytes, identities face by face (frame and
identity columns), and face-level agreement (faces paired by frame and box, identities mapped
one to one; ``bench/harness/faces.py``'s ``agreement``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from harness.contenders import checkout_rev  # noqa: E402
from harness.faces import agreement  # noqa: E402
from make_video import SHARED  # noqa: E402

CLIPS = {
    "hamilton_short": 3,
    "two_person_call": 5,
    "dance_scene": 5,
    "debate_clip": 3,
    "talk_show_montage": 3,
}
VARIANTS = {
    "compat": [
        "--backend",
        "onnxruntime",
        "--det-input",
        "640x640",
        "--decoder",
        "opencv",
        "--clustering",
        "online",
    ],
    "pyav-ort": ["--backend", "onnxruntime", "--det-input", "640x640", "--clustering", "online"],
    "openvino": ["--backend", "openvino", "--det-input", "640x640", "--clustering", "online"],
    "defaults": [],
}


def run(video: Path, step: int, out: Path, flags: list[str], code: Path | None = None) -> Path:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEPIPE_")}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    # the revision's own entry point (checkout_rev's bin/facepipe): the venv's imports today's layout
    exe = code / "bin" / "facepipe" if code is not None else Path(sys.executable).with_name("facepipe")
    cmd = [str(exe), "run", str(video), "--frame-step", str(step)]
    done = subprocess.run(
        [*cmd, "--out", str(out), "--no-progress", *flags],
        capture_output=True,
        text=True,
        env=env,
        cwd=code or ROOT,  # Celery imports celeryconfig and tasks from the working folder first
    )
    if done.returncode != 0:
        raise SystemExit(f"seed_compat: {' '.join(cmd + flags)} failed: {done.stderr[-800:]}")
    return out / "faces.jsonl"


def columns(path: Path) -> dict[str, list]:
    faces = [json.loads(line) for line in path.read_text().splitlines()]
    return {
        "frames": [f["frame"] for f in faces],
        "identities": [f["identity"] for f in faces],
        "bboxes": [f["bbox"] for f in faces],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rev", default="e7f78c6", help="the seed's git revision (default e7f78c6)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "seed_compat.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="seed-compat-"))
    code = Path(checkout_rev(work, args.rev))
    results: dict[str, dict] = {}
    lines = ["| clip (step) | " + " | ".join(VARIANTS) + " |", "|---" * (len(VARIANTS) + 1) + "|"]
    for clip, step in CLIPS.items():
        video = SHARED / "videos" / f"{clip}.mp4"
        seed = run(video, step, work / f"{clip}-seed", [], code)
        cells = []
        for name, flags in VARIANTS.items():
            mine = run(video, step, work / f"{clip}-{name}", flags)
            a, b = columns(seed), columns(mine)
            row = {
                "bytes_identical": seed.read_bytes() == mine.read_bytes(),
                "identities_face_by_face": (a["frames"], a["identities"]) == (b["frames"], b["identities"]),
                "faces": [len(a["frames"]), len(b["frames"])],
                **agreement(a, b),
            }
            results.setdefault(clip, {})[name] = row
            if row["bytes_identical"]:
                cells.append("bytes identical")
            elif row["identities_face_by_face"]:
                cells.append("identities face by face")
            else:
                cells.append(
                    f"{row['faces'][1]} of {row['faces'][0]} faces; agreement "
                    f"{100 * row['face_agreement']:.1f}%, BCubed F {row['bcubed_f_vs_a']:.3f}"
                )
        lines.append(f"| {clip} ({step}) | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    args.json.write_text(
        json.dumps({"rev": args.rev, "variants": VARIANTS, "results": results, "table": text}, indent=2)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
