"""Clustering accuracy of every candidate method on every label set, one command.

    python bench/accuracy.py [--cache DIR] [--orders 8] [--json bench/accuracy.json] [--quick]

Builds (or reuses) the label sets of ``bench/labelsets.py`` in ``/tmp/facepipe-accuracy``,
then runs every method of ``bench/clustering_options.py`` over the cached faces (no Celery, no
models: seconds) and scores it with ``facepipe.evaluate``. Prints markdown tables and
writes ``bench/accuracy.json``.

Label sets (columns):

* ``slideshow``, ``photos_tv``: the labelled photos (13 people), clean / clean + a
  TV-degraded second showing; every sampled frame (each showing is 2 sampled frames);
* ``hamilton@3``, ``call@3``, ``dance@3``, ``tv@3``: the clips and the TV edit at frame step 3;
* ``hamilton@15``, ``call@15``, ``dance@15``, ``tv@15``: the same faces at the CLI's default
  frame step 15 (every fifth sampled frame of the step-3 cache, so no new inference).

Online clustering depends on the order faces arrive in, and one order is one draw. So the
sets made of independent pieces are also scored in ``--orders`` more orders: the photo
showings of ``slideshow``/``photos_tv`` and the 13 shots of ``tv`` are shuffled as whole
pieces (seeded), the sampled frames renumbered so that each piece keeps its frame spacing.
Scores are means over the original order plus those orders (``min F`` = worst order). The
clips are one continuous edit each and are scored in their own order only.

Decision rule: a method is *eligible as default* only if, on every label set, both its mean
pairwise F1 and its mean BCubed F1 are at least the seed default's (``seed@0.27``), minus
0.0005 for rounding; eligible methods are ranked by mean BCubed F1 over all sets, then by the
fewest options switched on (the simplest to integrate).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
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
from clustering_options import Method, cluster  # noqa: E402

from facepipe.evaluate import evaluate  # noqa: E402

BASELINE = "seed@0.27"
EPS = 0.0005
VIDEO_SETS = ("hamilton", "call", "dance", "tv")
PHOTO_SETS = ("slideshow", "photos_tv", "photos_hard")
SHUFFLED = ("slideshow", "photos_tv", "photos_hard", "tv")


# ---------------------------------------------------------------- methods


def methods(full: bool = False) -> list[Method]:
    """The candidates. ``full`` widens the sweep (more thresholds, floors and linkages)."""
    out = [Method("seed@0.27", sim_thresh=0.27)]
    seed_t = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55) if full else (0.30, 0.35, 0.40, 0.45)
    out += [Method(f"seed@{t:.2f}", sim_thresh=t) for t in seed_t]
    out += [Method(f"cooccur@{t:.2f}", sim_thresh=t, cooccur=True) for t in (0.27, 0.35, 0.40)]
    floors = (0.2, 0.3, 0.4) if full else (0.2, 0.3)
    for t in (0.27, 0.35, 0.40):
        for floor in floors:
            out.append(Method(f"track@{t:.2f}/f{floor:.1f}", sim_thresh=t, track=True, track_floor=floor))
    out += [
        Method(f"track+cooccur@{t:.2f}/f0.3", sim_thresh=t, track=True, cooccur=True, track_floor=0.3)
        for t in (0.35, 0.40)
    ]
    online = (0.27, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55) if full else (0.30, 0.35, 0.40, 0.45, 0.50)
    merges = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40) if full else (0.15, 0.20, 0.25, 0.30, 0.35)
    for t in online:
        for m in merges:
            out.append(Method(f"seed@{t:.2f}+merge@{m:.2f}", sim_thresh=t, merge=m))
    for m in (0.20, 0.25, 0.30):
        out.append(Method(f"cooccur@0.40+merge@{m:.2f}", sim_thresh=0.40, cooccur=True, merge=m))
    for t in (0.35, 0.40):
        for m in (0.20, 0.25):
            out.append(
                Method(
                    f"track+cooccur@{t:.2f}/f0.3+merge@{m:.2f}",
                    sim_thresh=t,
                    track=True,
                    cooccur=True,
                    track_floor=0.3,
                    merge=m,
                )
            )
    out.append(
        Method("seed@0.40+merge@0.25(no cannot-link)", sim_thresh=0.40, merge=0.25, merge_cannot_link=False)
    )
    for m in (0.40, 0.50, 0.60) if full else (0.50,):
        out.append(
            Method(f"seed@0.40+merge@{m:.2f}(centroid)", sim_thresh=0.40, merge=m, merge_linkage="centroid")
        )
    return out


def complexity(method: Method) -> int:
    return int(method.cooccur) + int(method.track) + int(method.merge is not None)


# ---------------------------------------------------------------- views of the label sets


@functools.cache
def _plan(name: str) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(frame count, pieces) of a label set's video."""
    plan = labelsets.plan_for(name)
    length = labelsets.clip_length(name) if name in labelsets.CLIPS else len(plan)
    return length, tuple(labelsets.units_of(plan))


def sampled(name: str, step: int) -> list[int]:
    """Every frame the run samples at ``step`` (frames with no face included)."""
    return list(range(0, _plan(name)[0], step))


def view(data: dict[str, Any], step: int, order: list[int] | None) -> dict[str, np.ndarray]:
    """The set's faces at ``step``, with its pieces in ``order`` (None = as built)."""
    frames = data["frames"]
    keep = frames % step == 0
    units = _plan(data["name"])[1]
    if order is None:
        order = list(range(len(units)))
    renumber: dict[int, int] = {}
    position = 0
    for u in order:
        start, stop = units[u]
        for f in sampled(data["name"], step):
            if start <= f < stop:
                renumber[f] = position * step
                position += 1
    new_frames = np.array([renumber.get(int(f), -1) for f in frames])
    idx = np.nonzero(keep)[0]
    idx = idx[np.lexsort((data["index"][idx], new_frames[idx]))]
    return {
        "frames": new_frames[idx],
        "embeddings": data["embeddings"][idx],
        "bboxes": data["bboxes"][idx],
        "labels": data["labels"][idx],
        "step": step,
    }


def views(sets: dict[str, dict[str, Any]], orders: int) -> dict[str, list[dict[str, np.ndarray]]]:
    """``set@step`` -> one view per order (the first is the order as built)."""
    out: dict[str, list[dict[str, np.ndarray]]] = {}
    for name, data in sets.items():
        steps = (labelsets.STEP,) if name in PHOTO_SETS else (labelsets.STEP, 15)
        n_units = len(_plan(name)[1])
        shuffles: list[list[int] | None] = [None]
        if name in SHUFFLED:
            rng = random.Random(f"{name}-orders")
            for _ in range(orders):
                perm = list(range(n_units))
                rng.shuffle(perm)
                shuffles.append(perm)
        for step in steps:
            key = name if name in PHOTO_SETS else f"{name}@{step}"
            out[key] = [view(data, step, order) for order in shuffles]
    return dict(sorted(out.items(), key=lambda kv: _set_rank(kv[0])))


def _set_rank(key: str) -> tuple[int, int]:
    name, _, step = key.partition("@")
    order = (*PHOTO_SETS, *VIDEO_SETS)
    return (int(step or 0), order.index(name))


# ---------------------------------------------------------------- scoring


def score(method: Method, runs: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Mean (over orders) of every metric, plus the worst order's F1s."""
    results = []
    for v in runs:
        predicted = cluster(v["frames"], v["embeddings"], v["bboxes"], method, v["step"])
        results.append(evaluate(predicted.tolist(), [x or None for x in v["labels"].tolist()]))
    out: dict[str, Any] = {"orders": len(results)}
    for kind in ("pairwise", "bcubed"):
        out[kind] = {k: float(np.mean([r[kind][k] for r in results])) for k in ("precision", "recall", "f1")}
        out[kind]["min_f1"] = float(min(r[kind]["f1"] for r in results))
    out["found"] = float(np.mean([r["found"] for r in results]))
    out["true"] = results[0]["true"]
    out["faces"] = results[0]["faces"]
    out["unlabelled"] = results[0]["unlabelled"]
    out["identities"] = float(np.mean([r["identities"] for r in results]))
    return out


def verdict(result: dict[str, Any], base: dict[str, Any]) -> str:
    """'win', 'tie' or 'loss' against the baseline on one set (both F1s must hold)."""
    d_pw = result["pairwise"]["f1"] - base["pairwise"]["f1"]
    d_b3 = result["bcubed"]["f1"] - base["bcubed"]["f1"]
    if d_pw < -EPS or d_b3 < -EPS:
        return "loss"
    return "win" if d_pw > EPS or d_b3 > EPS else "tie"


def recommend(results: dict[str, dict[str, Any]], by_name: dict[str, Method]) -> list[dict[str, Any]]:
    """Eligible methods (never below the baseline on a set), best first.

    Order: mean BCubed F1 over all sets (4 decimals), then fewest options switched on, then
    the most eligible equally-scored neighbours within 0.05 of both thresholds (the middle of
    a plateau, not its edge), then the lower online threshold (fewer fragments left for the
    merge pass, and live per-face identities closer to today's).
    """
    base = results[BASELINE]
    ranked = []
    for name, per_set in results.items():
        verdicts = {s: verdict(r, base[s]) for s, r in per_set.items()}
        if name == BASELINE or "loss" in verdicts.values():
            continue
        ranked.append(
            {
                "method": name,
                "wins": sum(v == "win" for v in verdicts.values()),
                "mean_bcubed_f1": float(np.mean([r["bcubed"]["f1"] for r in per_set.values()])),
                "mean_pairwise_f1": float(np.mean([r["pairwise"]["f1"] for r in per_set.values()])),
                "verdicts": verdicts,
            }
        )

    def key(r: dict[str, Any]) -> tuple[float, int]:
        return (round(r["mean_bcubed_f1"], 4), -complexity(by_name[r["method"]]))

    for r in ranked:
        m = by_name[r["method"]]
        r["plateau_neighbours"] = sum(
            1
            for other in ranked
            if other is not r
            and key(other) == key(r)
            and _same_shape(m, o := by_name[other["method"]])
            and abs(o.sim_thresh - m.sim_thresh) <= 0.051
            and abs((o.merge or 0) - (m.merge or 0)) <= 0.051
        )
    ranked.sort(
        key=lambda r: (
            -round(r["mean_bcubed_f1"], 4),
            complexity(by_name[r["method"]]),
            -r["plateau_neighbours"],
            by_name[r["method"]].sim_thresh,
        )
    )
    return ranked


def _same_shape(a: Method, b: Method) -> bool:
    def shape(m: Method) -> tuple:
        return (m.cooccur, m.track, m.merge is None, m.merge_linkage, m.merge_cannot_link, m.track_floor)

    return shape(a) == shape(b)


# ---------------------------------------------------------------- output


def long_table(results: dict[str, dict[str, Any]], names: list[str]) -> str:
    lines = [
        "| option | label set | pw P | pw R | pw F | B3 P | B3 R | B3 F | found/true | min F (pw/B3) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for key, r in results[name].items():
            pw, b3 = r["pairwise"], r["bcubed"]
            lines.append(
                f"| {name} | {key} | {pw['precision']:.3f} | {pw['recall']:.3f} | {pw['f1']:.3f} | "
                f"{b3['precision']:.3f} | {b3['recall']:.3f} | {b3['f1']:.3f} | "
                f"{r['found']:.1f}/{r['true']} | {pw['min_f1']:.3f}/{b3['min_f1']:.3f} |"
            )
    return "\n".join(lines)


def pivot(results: dict[str, dict[str, Any]]) -> str:
    """pairwise F1 / BCubed F1 per option and set, with W/T/L against the baseline."""
    base = results[BASELINE]
    keys = list(base)
    lines = [
        "| option | " + " | ".join(keys) + " | W/T/L |",
        "|---|" + "---|" * (len(keys) + 1),
    ]
    for name, per_set in results.items():
        cells, tally = [], {"win": 0, "tie": 0, "loss": 0}
        for key in keys:
            r = per_set[key]
            v = verdict(r, base[key])
            tally[v] += 1
            mark = "" if name == BASELINE else {"win": " +", "tie": "", "loss": " -"}[v]
            cells.append(f"{r['pairwise']['f1']:.3f}/{r['bcubed']['f1']:.3f}{mark}")
        wtl = "baseline" if name == BASELINE else f"{tally['win']}/{tally['tie']}/{tally['loss']}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {wtl} |")
    return "\n".join(lines)


def set_table(sets: dict[str, dict[str, Any]], all_views: dict[str, list]) -> str:
    lines = ["| label set | faces | labelled | people | orders |", "|---|---|---|---|---|"]
    for key, runs in all_views.items():
        labels = runs[0]["labels"]
        known = labels[labels != ""]
        lines.append(f"| {key} | {len(labels)} | {len(known)} | {len(set(known.tolist()))} | {len(runs)} |")
    return "\n".join(lines)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--cache", type=Path, default=labelsets.CACHE, help="label-set cache folder")
    parser.add_argument("--orders", type=int, default=8, help="extra shuffled orders per shuffled set")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "accuracy.json", help="results file")
    parser.add_argument("--quick", action="store_true", help="a narrower sweep of thresholds")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the label sets (re-runs the models)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    sets = labelsets.ensure_sets(args.cache, args.rebuild)
    all_views = views(sets, args.orders)
    candidates = methods(full=not args.quick)
    by_name = {m.name: m for m in candidates}
    results: dict[str, dict[str, Any]] = {}
    for method in candidates:
        results[method.name] = {key: score(method, runs) for key, runs in all_views.items()}
    ranked = recommend(results, by_name)
    elapsed = time.perf_counter() - started

    print("## Label sets\n")
    print(set_table(sets, all_views))
    print("\n## pairwise F1 / BCubed F1 (mean over orders); + win, - loss against seed@0.27\n")
    print(pivot(results))
    shown = [BASELINE] + [r["method"] for r in ranked[:1]]
    extra = (
        "seed@0.30",
        "seed@0.40",
        "cooccur@0.40",
        "track@0.40/f0.3",
        "track+cooccur@0.40/f0.3+merge@0.25",
    )
    shown += [n for n in extra if n in results and n not in shown]
    print("\n## Full metrics (selected options; every option is in the JSON)\n")
    print(long_table(results, shown))
    print("\n## Eligible as default (never below seed@0.27 on any set)\n")
    if ranked:
        for r in ranked[:10]:
            print(
                f"- {r['method']}: {r['wins']} wins, mean pairwise F1 {r['mean_pairwise_f1']:.4f}, "
                f"mean BCubed F1 {r['mean_bcubed_f1']:.4f}, {r['plateau_neighbours']} equal neighbours"
            )
        print(f"\nrecommended default: {ranked[0]['method']}")
    else:
        print("- none")
    print(f"\n({len(candidates)} options x {len(all_views)} label sets in {elapsed:.0f} s)")

    payload = {
        "baseline": BASELINE,
        "rule": "eligible iff mean pairwise F1 and mean BCubed F1 >= baseline - 0.0005 on every set",
        "label_sets": {
            key: {
                "faces": len(runs[0]["labels"]),
                "labelled": int((runs[0]["labels"] != "").sum()),
                "people": len(set(runs[0]["labels"][runs[0]["labels"] != ""].tolist())),
                "orders": len(runs),
                "step": int(runs[0]["step"]),
            }
            for key, runs in all_views.items()
        },
        "methods": {m.name: {k: v for k, v in vars(m).items() if k != "name"} for m in candidates},
        "results": results,
        "eligible": ranked,
        "recommended": ranked[0]["method"] if ranked else None,
    }
    args.json.write_text(json.dumps(_rounded(payload), indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
