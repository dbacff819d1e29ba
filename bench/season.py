"""A season, measured: episodes that share people, one series bank, and a later episode with ``--bank``.

    python bench/season.py [--frame-step 3] [--episodes 3] [--work /tmp/facepipe-season] [--keep]

Builds TV-style episodes from the shared clips: each is the TV edit of ``bench/labelsets.py``
(hamilton, dance and call cut together, a split screen, small faces), with its pieces drawn
and ordered by a seed of its own (about four in five of the 13 pieces, shuffled), so the
episodes share their people but not their shots. Then, as a user would:

1. ``facepipe run EP1 EP2 EP3 --out WORK/season``: scores the series faces (``series/faces.jsonl``,
   identity = series id) against the labels (the label sets' rules: reference photos, hand rules,
   split-screen halves) with pairwise and BCubed F, and counts people found against true;
2. ``facepipe run EP4 --bank WORK/season/series/bank.npz --out WORK/later``: for the faces of
   people the bank already knows, the share that gets the series id the bank gave that person
   (the id most of the person's faces have in the first three episodes).

Prints the figures and one JSON line; needs ``../shared/data`` (``labelsets.py`` builds the
reference embeddings into its cache on first use).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import labelsets  # noqa: E402

from facepipe.clustering.evaluate import evaluate  # noqa: E402


def episode_plan(seed: int) -> list[list[labelsets.Tile]]:
    """The TV edit's pieces, about four in five of them, in a seeded order (no piece twice)."""
    plan = labelsets.tv_plan()
    pieces = [plan[a:b] for a, b in labelsets.units_of(plan)]
    rng = random.Random(seed)
    chosen = rng.sample(pieces, k=max(1, round(len(pieces) * 0.8)))
    return [tiles for piece in chosen for tiles in piece]


def run(*args: str) -> float:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "facepipe.app.cli", "run", *args, "--no-progress"], cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"facepipe run failed ({proc.returncode}): {' '.join(args)}")
    return time.monotonic() - started


def labelled_faces(series: Path, plans: dict[str, list], refs: dict) -> tuple[list[dict], list[str]]:
    """The series faces of ``series/`` and their true labels ('' where the rules cannot tell)."""
    faces = [json.loads(line) for line in (series / "faces.jsonl").read_text().splitlines()]
    with np.load(series / "bank.npz", allow_pickle=False) as bank:
        episodes = bank["episodes"].tolist()
        new = np.isin(bank["face_episodes"], [episodes.index(name) for name in plans])
        embeddings = bank["face_embeddings"][new]
    labels: list[str] = []
    for name, plan in plans.items():
        mine = [i for i, face in enumerate(faces) if face["episode"] == name]
        data = {
            "frames": np.array([faces[i]["frame"] for i in mine], dtype=np.int64),
            "bboxes": np.array([faces[i]["bbox"] for i in mine], dtype=np.float32).reshape(-1, 4),
            "embeddings": embeddings[mine],
        }
        labels += labelsets.label_faces(data, plan, refs)[0]
    return faces, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frame-step", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=3, help="episodes of the season (then one more)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/facepipe-season"))
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    refs = labelsets.load_refs(labelsets.CACHE)
    names = [f"ep{k + 1}" for k in range(args.episodes + 1)]
    plans = {name: episode_plan(seed) for seed, name in enumerate(names, start=1)}
    for name, plan in plans.items():
        video = args.work / f"{name}.mp4"
        if not video.is_file():
            labelsets.render(video, plan)
    step = ["--frame-step", str(args.frame_step)]
    season, later = args.work / "season", args.work / "later"
    first = names[:-1]
    t_season = run(*(str(args.work / f"{n}.mp4") for n in first), *step, "--out", str(season))
    t_later = run(
        str(args.work / f"{names[-1]}.mp4"),
        *step,
        "--bank",
        str(season / "series" / "bank.npz"),
        "--out",
        str(later),
    )

    faces, labels = labelled_faces(season / "series", {n: plans[n] for n in first}, refs)
    scores = evaluate([f["identity"] for f in faces], [label or None for label in labels])
    # the bank's id for each person: the id most of their faces got in the season
    votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for face, label in zip(faces, labels, strict=True):
        if label:
            votes[label][face["identity"]] += 1
    bank_id = {label: counter.most_common(1)[0][0] for label, counter in votes.items()}
    later_faces, later_labels = labelled_faces(later / "series", {names[-1]: plans[names[-1]]}, refs)
    known = [(f, label) for f, label in zip(later_faces, later_labels, strict=True) if label in bank_id]
    kept = sum(f["identity"] == bank_id[label] for f, label in known)
    later_scores = evaluate([f["identity"] for f in later_faces], [label or None for label in later_labels])
    result = {
        "frame_step": args.frame_step,
        "episodes": len(first),
        "season_faces": len(faces),
        "season_labelled": scores["faces"],
        "season_bcubed_f": round(scores["bcubed"]["f1"], 4),
        "season_pairwise_f": round(scores["pairwise"]["f1"], 4),
        "season_people_found": scores["found"],
        "season_people_true": scores["true"],
        "season_seconds": round(t_season, 1),
        "later_known_faces": len(known),
        "later_kept_series_id": round(kept / len(known), 4) if known else None,
        "later_bcubed_f": round(later_scores["bcubed"]["f1"], 4),
        "later_seconds": round(t_later, 1),
    }
    print(
        f"season of {len(first)} episodes at frame step {args.frame_step}: BCubed F "
        f"{result['season_bcubed_f']}, pairwise F {result['season_pairwise_f']}, "
        f"{scores['found']} people found of {scores['true']} ({scores['faces']} labelled faces), "
        f"{t_season:.0f} s"
    )
    print(
        f"{names[-1]} with --bank: {kept} of {len(known)} faces of known people kept their series id "
        f"({100 * kept / max(1, len(known)):.1f}%), BCubed F {result['later_bcubed_f']}, {t_later:.0f} s"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
