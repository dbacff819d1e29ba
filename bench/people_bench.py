"""Issue 18's bench: one person, one identity, on every view, including compilations and a season.

    python bench/people_bench.py [--cache DIR] [--keys SUBSTR ...] [--json FILE] [--markdown FILE]
    python bench/people_bench.py --sweep [--json FILE] [--markdown FILE]

Scores, per view (``bench/people_cases.py``: every label set at frame steps 3, 6, 15, the
low-resolution and proxy views, the photo sets, the compilations and the two-episode season) and
per row: BCubed P/R/F over the kept labelled faces, pairwise F, found/true people, identities over
all kept faces, ``kept`` (the share of labelled faces not rejected as no face) and the **per-person
count error** (:func:`accuracy.score_labels`, i.e. :func:`facepipe.clustering.evaluate.evaluate`:
a person's main identity holds most of their kept faces; its labelled faces against the person's
labelled faces, rejected ones included; ``e`` is the worst over persons with >= 20 labelled
faces, ``>5%`` how many of them are off by more than 5 %).

Rows:

* **the product**, through :func:`facepipe.clustering.run.cluster_records` on the view's chunk
  records (``accuracy.final_pass``): ``--clustering tracks`` (**the default**: average linkage of
  tracks at 0.25, then poorly seen groups join the person their neighbourhood names), **the
  previous default** (the same writer decisions, the final pass without the faces' ``emb_norm``:
  average linkage at 0.25 only), ``--clustering online`` and ``--clustering seed``. The season:
  each episode through the row's chain, then the product's series pass
  (:func:`facepipe.clustering.series.series_pass`, at ``--merge-thresh``; the seed's at
  ``--sim-thresh``, as ``facepipe run EP1 EP2`` does);
* **the peers**: face-level (Immich's DBSCAN at cosine distance 0.5 and 0.6, connected components
  at cos >= 0.4 and 0.5, average linkage of faces at distance 0.7 and 0.8, Chinese whispers at 0.4,
  FINCH's first and second partitions, single linkage with cannot-link at 0.4; on the season
  they cluster both episodes' faces at once) and tracks-level (the previous default's average
  linkage of tracks at ``--merge-thresh`` 0.20 and 0.15, series pass at the same threshold).

Checks on every view but the season (the run stops if one fails): the final pass alone on the
writer's output (:func:`facepipe.clustering.people.cluster_tracks` on the case, with and without
norms) gives exactly the default's and the previous default's labels; neither ever puts two faces
of one frame in one identity or splits a track.

**Decision rule** (issue 18): the default must win or tie against the previous default on every
view and lose on none (``accuracy.verdict``: a loss is BCubed or pairwise F lower by more than
0.0005); reported beside it: W/T/L against every peer and against the best peer on each view (an
oracle that may pick a different peer on each view), and the views lost to it.

``--sweep``: the neighbourhood step's three constants (``floor``, ``margin``, ``weak_norm`` of
:func:`facepipe.clustering.people.cluster_tracks`) over a grid (:func:`sweep_grid`: every margin x
weak norm at the default floor, every floor at the default margin and weak norm), on every view
but the season (the series pass uses the module's constants): W/T/L of each setting against the
previous default.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import accuracy  # noqa: E402
import labelsets  # noqa: E402
import peers  # noqa: E402
import people_cases  # noqa: E402

from facepipe.clustering.people import FLOOR, MARGIN, STRONG_MARGIN, WEAK_NORM, cluster_tracks  # noqa: E402
from facepipe.clustering.series import EpisodeResult, series_pass, series_thresh  # noqa: E402

DEFAULT, PREVIOUS = accuracy.DEFAULT, accuracy.PREVIOUS
#: the product's rows: name -> (settings changes, the final pass sees ``emb_norm``)
PRODUCT = {row: accuracy.MODES[row] for row in (DEFAULT, PREVIOUS, accuracy.ONLINE, accuracy.SEED)}
#: face-level peers: (frames, embeddings) -> label per face
FACE_PEERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Immich DBSCAN d0.5 min 3": lambda f, e: peers.dbscan(e, 0.5, 3),
    "DBSCAN d0.6 min 3": lambda f, e: peers.dbscan(e, 0.6, 3),
    "connected components cos >= 0.4": lambda f, e: peers.connected_components(e, 0.4),
    "connected components cos >= 0.5": lambda f, e: peers.connected_components(e, 0.5),
    "average linkage d0.7": lambda f, e: peers.average_linkage_faces(e, 0.7),
    "average linkage d0.8": lambda f, e: peers.average_linkage_faces(e, 0.8),
    "Chinese whispers 0.4": lambda f, e: peers.chinese_whispers(e, 0.4),
    "FINCH first partition": lambda f, e: peers.finch(e, 1),
    "FINCH second partition": lambda f, e: peers.finch(e, 2),
    "single linkage + cannot-link 0.4": lambda f, e: peers.single_linkage_cannot_link(f, e, 0.4),
}
#: tracks-level peers: the product's chain at another setting (``accuracy.TRACK_PEERS``)
TRACK_PEERS = accuracy.TRACK_PEERS
PEER_ROWS = (*FACE_PEERS, *TRACK_PEERS)

#: the sweep's grid (the module's constants are in it)
SWEEP_FLOORS = (0.04, 0.06, 0.08, 0.10, 0.12, 0.14)
SWEEP_MARGINS = (0.06, 0.07, 0.08, 0.10, 0.11, 0.12, 0.15)
SWEEP_NORMS = (16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0)
#: the well-seen tier's margin (None: no tier), at the default floor, margin and weak norm
SWEEP_STRONG = (None, 0.10, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18, 0.20)


# ---------------------------------------------------------------- running the rows


def run_product_season(changes: dict[str, Any], norms: bool, episodes: list[accuracy.View]) -> np.ndarray:
    """The series identity of every face of the episodes (-1: rejected): each episode through the
    product's chain, then the series pass."""
    results, thresh = [], 0.0
    for n, view in enumerate(episodes):
        params = accuracy.run_params(view, changes)
        final = accuracy.final_pass(accuracy.records_of(view), params, norms)
        results.append(EpisodeResult(f"ep{n + 1}", f"ep{n + 1}.mp4", params.fps, params.frame_step, final))
        thresh = series_thresh(params)
    bank = series_pass(results, None, thresh).bank
    out, start = [], 0
    for result in results:
        assert result.final is not None
        labels = result.final.labels
        kept = labels >= 0
        mine = np.full(len(labels), -1, dtype=np.int64)
        mine[kept] = bank.face_identities[start : start + int(kept.sum())]
        start += int(kept.sum())
        out.append(mine)
    return np.concatenate(out)


def season_faces(episodes: list[accuracy.View]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (episode 2's offset so no frame is shared), embeddings and labels of both episodes."""
    frames = np.concatenate([v.frames + n * (1 << 32) for n, v in enumerate(episodes)])
    embeddings = np.concatenate([v.faces["embeddings"] for v in episodes])
    return frames, embeddings, np.concatenate([v.labels for v in episodes])


def season_keys(views: dict[str, accuracy.View]) -> list[str]:
    return [f"season@{s}" for s in people_cases.STEPS if f"season-ep1@{s}" in views]


def score_keys(views: dict[str, accuracy.View]) -> list[str]:
    return [k for k in views if not k.startswith("season-")] + season_keys(views)


def episodes_of(key: str, views: dict[str, accuracy.View]) -> list[accuracy.View]:
    step = key.split("@")[1]
    return [views[f"season-ep1@{step}"], views[f"season-ep2@{step}"]]


def check(
    key: str, view: accuracy.View, case: dict[str, Any], default: np.ndarray, previous: np.ndarray
) -> None:
    """The final pass alone equals the product; constraints hold (module docstring)."""
    args = (case["tracks"], case["frames"], case["embeddings"], case["suspect"], 0.25)
    if not np.array_equal(cluster_tracks(*args, norms=case["norms"]), default):
        raise AssertionError(f"{key}: cluster_tracks on the writer's output is not the default's result")
    if not np.array_equal(cluster_tracks(*args, norms=None), previous):
        raise AssertionError(f"{key}: cluster_tracks without norms is not the previous default's result")
    for row, labels in ((DEFAULT, default), (PREVIOUS, previous)):
        kept = labels >= 0
        if len(set(zip(case["frames"][kept].tolist(), labels[kept].tolist(), strict=True))) != kept.sum():
            raise AssertionError(f"{row} on {key}: two faces of one frame in one identity")
        _, first = np.unique(case["tracks"], return_index=True)
        if not np.array_equal(labels, labels[first][np.unique(case["tracks"], return_inverse=True)[1]]):
            raise AssertionError(f"{row} on {key}: a track split")


def score_all(views: dict[str, accuracy.View], keys: list[str]) -> dict[str, Any]:
    rows = [*PRODUCT, *FACE_PEERS, *TRACK_PEERS]
    results: dict[str, dict[str, Any]] = {row: {} for row in rows}
    seconds = dict.fromkeys(rows, 0.0)
    checked = 0
    for key in keys:
        season = key.startswith("season@")
        episodes = episodes_of(key, views) if season else []
        if season:
            frames, embeddings, truth = season_faces(episodes)
        else:
            view = views[key]
            records = accuracy.records_of(view)
            frames, embeddings, truth = view.frames, view.faces["embeddings"], view.labels
        labels_of: dict[str, np.ndarray] = {}
        for row, (changes, norms) in {**PRODUCT, **TRACK_PEERS}.items():
            t0 = time.perf_counter()
            if season:
                labels_of[row] = run_product_season(changes, norms, episodes)
            else:
                labels_of[row] = accuracy.run_product(records, accuracy.run_params(view, changes), norms)
            seconds[row] += time.perf_counter() - t0
        for row, fn in FACE_PEERS.items():
            t0 = time.perf_counter()
            labels_of[row] = np.asarray(fn(frames, embeddings), dtype=np.int64)
            seconds[row] += time.perf_counter() - t0
        if not season:
            check(key, view, people_cases.writer_case(view), labels_of[DEFAULT], labels_of[PREVIOUS])
            checked += 1
        for row in rows:
            results[row][key] = accuracy.aggregate([accuracy.score_labels(labels_of[row], truth)])
        print(f"people_bench: {key} {accuracy.cell(results[DEFAULT][key])}", file=sys.stderr, flush=True)
    return {"results": results, "seconds": seconds, "checked_views": checked}


# ---------------------------------------------------------------- groups and tables

GROUPS = (
    "hand-labelled clips",
    "reference-rule clips and TV edit",
    "low resolution (640x360, 480x270)",
    "proxy (degraded bursts)",
    "compilations and season",
    "photo sets",
)


def group_of(key: str) -> str:
    name = key.partition("@")[0]
    base = labelsets.base_name(name)
    if name.startswith(("compilation", "season")):
        return GROUPS[4]
    if base in labelsets.PHOTO_SETS:
        return GROUPS[5]
    if name.endswith(labelsets.PROXY_SUFFIX):
        return GROUPS[3]
    if labelsets.lowres_of(base):
        return GROUPS[2]
    return GROUPS[0] if base in labelsets.TV_LABELLED else GROUPS[1]


def cell(r: dict[str, Any]) -> str:
    """BCubed P/R/**F** found/true e(worst count error) [k kept]."""
    b = r["bcubed"]
    kept = "" if r["kept"] > 0.9995 else f" k{r['kept']:.3f}"
    prf = f"{b['precision']:.3f}/{b['recall']:.3f}/**{b['f1']:.3f}**"
    return f"{prf} {r['found']:.0f}/{r['true']} e{r['worst_count_error']:.2f}{kept}"


def best_peer(results: dict[str, Any], key: str) -> str:
    """The peer with the best BCubed F on a view (ties: the first in row order)."""
    return max(PEER_ROWS, key=lambda p: (results[p][key]["bcubed"]["f1"], -PEER_ROWS.index(p)))


def view_table(results: dict[str, Any], keys: list[str]) -> str:
    """One line per view: the default, the previous default, online, seed, the best peer."""
    rows = list(PRODUCT)
    lines = [
        "| view | " + " | ".join(rows) + " | best peer on the view |",
        "|---|" + "---|" * (len(rows) + 1),
    ]
    for k in keys:
        best = best_peer(results, k)
        cells = [cell(results[r][k]) for r in rows] + [f"{cell(results[best][k])} ({best})"]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def peer_table(results: dict[str, Any], keys: list[str]) -> str:
    """Every peer on the views: BCubed F, found/true, worst count error."""
    lines = ["| peer | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for row in PEER_ROWS:
        cells = [
            f"{results[row][k]['bcubed']['f1']:.3f} {results[row][k]['found']:.0f}/{results[row][k]['true']} "
            f"e{results[row][k]['worst_count_error']:.2f}"
            for k in keys
        ]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def oracle(results: dict[str, Any], key: str) -> dict[str, Any]:
    return accuracy.best_of(results, list(PEER_ROWS), key)


def summarise(results: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """Per row: per group and over all views, mean/min F, min P, min kept, views with found = true,
    worst count error, persons off by > 5 %; W/T/L against the previous default and the best peer."""
    out: dict[str, Any] = {}
    for row, per in results.items():
        stats: dict[str, Any] = {}
        for group in (*GROUPS, "all"):
            ks = [k for k in keys if group in ("all", group_of(k))]
            if not ks:
                continue
            f = [per[k]["bcubed"]["f1"] for k in ks]
            stats[group] = {
                "views": len(ks),
                "mean_f": float(np.mean(f)),
                "min_f": float(min(f)),
                "min_precision": float(min(per[k]["bcubed"]["precision"] for k in ks)),
                "min_kept": float(min(per[k]["kept"] for k in ks)),
                "found_eq_true": sum(per[k]["found"] == per[k]["true"] for k in ks),
                "worst_count_error": float(max(per[k]["worst_count_error"] for k in ks)),
                "over_5pct": int(sum(per[k]["over_5pct"] for k in ks)),
                "vs_previous": accuracy.tally(per, lambda k: results[PREVIOUS][k], ks),
                "vs_best_peer": accuracy.tally(per, lambda k: oracle(results, k), ks),
            }
        out[row] = stats
    return out


def wtl(t: dict[str, Any]) -> str:
    return f"{len(t['win'])}/{t['tie']}/{len(t['loss'])}"


def summary_table(summary: dict[str, Any], group: str = "all") -> str:
    lines = [
        "| row | views | mean F | min F | min P | min kept | found = true | worst e | persons > 5 % "
        "| vs previous W/T/L | vs best peer W/T/L |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, stats in summary.items():
        s = stats[group]
        lines.append(
            f"| {row} | {s['views']} | {s['mean_f']:.4f} | {s['min_f']:.3f} | {s['min_precision']:.3f} | "
            f"{s['min_kept']:.3f} | {s['found_eq_true']}/{s['views']} | {s['worst_count_error']:.2f} | "
            f"{s['over_5pct']} | {wtl(s['vs_previous'])} | {wtl(s['vs_best_peer'])} |"
        )
    return "\n".join(lines)


def group_table(summary: dict[str, Any], rows: list[str]) -> str:
    """Mean / min F, found = true, persons > 5 %, min P per group, for ``rows``."""
    groups = [g for g in GROUPS if g in summary[rows[0]]]
    lines = ["| group (views) | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for g in groups:
        cells = []
        for row in rows:
            s = summary[row][g]
            cells.append(
                f"{s['mean_f']:.4f} / {s['min_f']:.3f}; {s['found_eq_true']}/{s['views']}; "
                f"{s['over_5pct']}; P {s['min_precision']:.3f}"
            )
        lines.append(f"| {g} ({summary[rows[0]][g]['views']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def decision(results: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    per = results[DEFAULT]
    vs_previous = accuracy.tally(per, lambda k: results[PREVIOUS][k], keys)
    vs_best = accuracy.tally(per, lambda k: oracle(results, k), keys)
    return {
        "rule": "the default wins or ties against the previous default on every view, loses on none",
        "rule_met": not vs_previous["loss"],
        "vs_previous": vs_previous,
        "vs_online": accuracy.tally(per, lambda k: results[accuracy.ONLINE][k], keys),
        "vs_seed": accuracy.tally(per, lambda k: results[accuracy.SEED][k], keys),
        "vs_best_peer": vs_best,
        "vs_peer": {p: accuracy.tally(per, lambda k, p=p: results[p][k], keys) for p in PEER_ROWS},
        "lost_to_best_peer": {k: best_peer(results, k) for k in vs_best["loss"]},
    }


def decision_lines(d: dict[str, Any]) -> list[str]:
    out = [
        f"- rule ({d['rule']}): **{'MET' if d['rule_met'] else 'NOT MET'}**; "
        f"vs previous default {wtl(d['vs_previous'])}, wins: {', '.join(d['vs_previous']['win'])}"
        + (f"; losses: {', '.join(d['vs_previous']['loss'])}" if d["vs_previous"]["loss"] else ""),
        f"- vs --clustering online {wtl(d['vs_online'])}; vs --clustering seed {wtl(d['vs_seed'])}",
        f"- vs the best peer on each view {wtl(d['vs_best_peer'])}; lost: "
        + ", ".join(f"{k} (to {p})" for k, p in d["lost_to_best_peer"].items()),
    ]
    out += [
        f"- vs {p}: {wtl(t)}" + (f" (lost: {', '.join(t['loss'])})" if t["loss"] else "")
        for p, t in d["vs_peer"].items()
    ]
    return out


# ---------------------------------------------------------------- the sweep


def sweep_grid() -> list[tuple[float, float, float, float | None]]:
    """(floor, margin, weak_norm, strong_margin): every margin x weak norm at the default floor,
    every floor at the default margin and weak norm, then every strong margin at the defaults."""
    grid = [(FLOOR, m, w, STRONG_MARGIN) for w in SWEEP_NORMS for m in SWEEP_MARGINS]
    grid += [(f, MARGIN, WEAK_NORM, STRONG_MARGIN) for f in SWEEP_FLOORS if abs(f - FLOOR) > 1e-9]
    return grid + [(FLOOR, MARGIN, WEAK_NORM, t) for t in SWEEP_STRONG if t != STRONG_MARGIN]


def setting(floor: float, margin: float, weak: float, strong: float | None = STRONG_MARGIN) -> str:
    return f"{floor:.2f}/{margin:.2f}/{weak:g}/{'off' if strong is None else f'{strong:.2f}'}"


def sweep(views: dict[str, accuracy.View], keys: list[str]) -> dict[str, Any]:
    """W/T/L against the previous default of every (floor, margin, weak_norm) of :func:`sweep_grid`."""
    cases = {k: people_cases.writer_case(views[k]) for k in keys}
    scored: dict[str, dict[str, Any]] = {}
    base = {}
    for k, c in cases.items():
        labels = cluster_tracks(c["tracks"], c["frames"], c["embeddings"], c["suspect"], 0.25)
        base[k] = accuracy.score_labels(labels, c["labels"])
    for floor, margin, weak, strong in sweep_grid():
        per = {}
        for k, c in cases.items():
            labels = cluster_tracks(
                c["tracks"], c["frames"], c["embeddings"], c["suspect"], 0.25, c["norms"],
                floor=floor, margin=margin, weak_norm=weak, strong_margin=strong,
            )  # fmt: skip
            per[k] = accuracy.score_labels(labels, c["labels"])
        t = accuracy.tally(per, lambda k: base[k], keys)
        scored[setting(floor, margin, weak, strong)] = {
            "floor": floor,
            "margin": margin,
            "weak_norm": weak,
            "strong_margin": strong,
            "win": len(t["win"]),
            "tie": t["tie"],
            "loss": t["loss"],
            "mean_f": float(np.mean([per[k]["bcubed"]["f1"] for k in keys])),
            "over_5pct": int(sum(per[k]["over_5pct"] for k in keys)),
        }
        print(
            f"people_bench: sweep {setting(floor, margin, weak, strong)}: {len(t['win'])}/{len(t['loss'])}",
            file=sys.stderr,
            flush=True,
        )
    return scored


def sweep_tables(scored: dict[str, Any], views: int) -> str:
    out = [
        f"W/L against the previous default on {views} views (the season left out: the series pass uses "
        f"the module's constants); floor {FLOOR:.2f}:\n",
        "| weak norm \\ margin | " + " | ".join(f"{m:.2f}" for m in SWEEP_MARGINS) + " |",
        "|---|" + "---|" * len(SWEEP_MARGINS),
    ]
    for weak in SWEEP_NORMS:
        cells = []
        for margin in SWEEP_MARGINS:
            s = scored[setting(FLOOR, margin, weak)]
            text = f"{s['win']}/{len(s['loss'])}"
            cells.append(f"**{text}**" if abs(margin - MARGIN) < 1e-9 and weak == WEAK_NORM else text)
        out.append(f"| {weak:g} | " + " | ".join(cells) + " |")
    out += ["", f"floor, at margin {MARGIN:.2f} and weak norm {WEAK_NORM:g}:", ""]
    out.append("| floor | " + " | ".join(f"{f:.2f}" for f in SWEEP_FLOORS) + " |")
    out.append("|---|" + "---|" * len(SWEEP_FLOORS))
    cells = []
    for f in SWEEP_FLOORS:
        s = scored[setting(f, MARGIN, WEAK_NORM)]
        cells.append(f"{s['win']}/{len(s['loss'])}")
    out.append("| W/L | " + " | ".join(cells) + " |")
    out += ["", f"strong margin (the well-seen tier), at the defaults above ({STRONG_MARGIN}):", ""]
    out.append(
        "| strong margin | " + " | ".join("off" if t is None else f"{t:.2f}" for t in SWEEP_STRONG) + " |"
    )
    out.append("|---|" + "---|" * len(SWEEP_STRONG))
    cells = []
    for t in SWEEP_STRONG:
        r = scored[setting(FLOOR, MARGIN, WEAK_NORM, t)]
        cells.append(f"{r['win']}/{len(r['loss'])}")
    out.append("| W/L | " + " | ".join(cells) + " |")
    losses = {k: s["loss"] for k, s in scored.items() if s["loss"]}
    out += ["", "losses of the settings that lose (floor/margin/weak norm/strong margin: views):", ""]
    out += [f"- {k}: {', '.join(v)}" for k, v in losses.items()]
    best = max((s["win"] for s in scored.values() if not s["loss"]), default=0)
    top = [k for k, s in scored.items() if not s["loss"] and s["win"] == best]
    out.append(f"\nsettings with 0 losses and the most wins ({best}): {', '.join(top)}")
    return "\n".join(out)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=labelsets.CACHE, help="label-set cache folder")
    parser.add_argument("--keys", nargs="*", help="substrings of the views to score (default: all)")
    parser.add_argument("--sweep", action="store_true", help="sweep the neighbourhood step's constants")
    parser.add_argument("--json", type=Path, help="results file (default bench/results/people[_sweep].json)")
    parser.add_argument("--markdown", type=Path, help="tables (default bench/results/people[_sweep].md)")
    args = parser.parse_args(argv)
    stem = "people_sweep" if args.sweep else "people"
    json_path = args.json or ROOT / "bench" / "results" / f"{stem}.json"
    md_path = args.markdown or ROOT / "bench" / "results" / f"{stem}.md"
    started = time.perf_counter()
    views = people_cases.build_views(args.cache)
    keys = score_keys(views)
    if args.keys:
        keys = [k for k in keys if any(s in k for s in args.keys)]
    if args.sweep:
        keys = [k for k in keys if not k.startswith("season@")]
        scored = sweep(views, keys)
        text = sweep_tables(scored, len(keys))
        print(text)
        md_path.write_text(f"## Sweep of the neighbourhood step's constants\n\n{text}\n")
        json_path.write_text(json.dumps(accuracy._rounded({"views": keys, "grid": scored}), indent=1) + "\n")
        return 0
    scored = score_all(views, keys)
    results = scored["results"]
    summary = summarise(results, keys)
    verdict = decision(results, keys)
    elapsed = time.perf_counter() - started
    text = [
        "cells: BCubed P/R/**F**, found/true people, e = worst per-person count error (persons with >= 20 "
        "labelled faces), k = share of labelled faces kept when below 1\n",
        "### decision (issue 18)\n\n" + "\n".join(decision_lines(verdict)) + "\n",
        f"### summary over all {len(keys)} views\n\n{summary_table(summary)}\n",
        "### by group (mean / min BCubed F; views with found = true; persons > 5 %; min precision)\n\n"
        f"{group_table(summary, [DEFAULT, PREVIOUS, accuracy.ONLINE, accuracy.SEED])}\n\n"
        f"{group_table(summary, list(PEER_ROWS))}\n",
    ]
    for group in GROUPS:
        ks = [k for k in keys if group_of(k) == group]
        if ks:
            text.append(
                f"### {group}\n\n{view_table(results, ks)}\n\nevery peer:\n\n{peer_table(results, ks)}\n"
            )
    text.append(
        f"checked on {scored['checked_views']} views: cluster_tracks on the writer's output = the product's "
        "labels (with and without norms); no identity holds two faces of one frame; no track split.\n"
    )
    text.append(
        "seconds per row (all views): " + ", ".join(f"{r} {s:.1f}" for r, s in scored["seconds"].items())
    )
    text.append(f"\n({len(results)} rows x {len(keys)} views, {elapsed:.0f} s)")
    out = "\n".join(text)
    print(out)
    md_path.write_text(out + "\n")
    payload = {
        "rule": verdict["rule"],
        "views": {
            k: {
                "group": group_of(k),
                "faces": len(season_faces(episodes_of(k, views))[2])
                if k.startswith("season@")
                else len(views[k].frames),
                "people": results[DEFAULT][k]["true"],
            }
            for k in keys
        },
        "rows": {
            **{r: {"product": c, "final_pass_sees_norms": n} for r, (c, n) in PRODUCT.items()},
            **{r: {"peer": "faces"} for r in FACE_PEERS},
            **{
                r: {"peer": "tracks", "product": c, "final_pass_sees_norms": n}
                for r, (c, n) in TRACK_PEERS.items()
            },
        },
        "decision": verdict,
        "summary": summary,
        "results": results,
        "checked_views": scored["checked_views"],
        "seconds": {"total": elapsed, **scored["seconds"]},
    }
    json_path.write_text(json.dumps(accuracy._rounded(payload), indent=1) + "\n")
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
