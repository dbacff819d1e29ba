"""Clustering accuracy of the product's modes, and of the peers, on every label set.

    python bench/accuracy.py [--orders 8] [--cache DIR] [--json bench/results/accuracy.json] [--rebuild]

Builds (or reuses) the label sets of ``bench/labelsets.py`` in ``/tmp/facepipe-accuracy`` (the
models run only when the cache is missing: about 2.5 min on two cores), then scores, with no
models, no Celery and no Redis, in a few minutes:

* **the product**, through its real decision chain, the one the writer and ``tests/reference.py``
  also run: the cached chunk records (what ``detect_chunk`` + ``embed_record`` hand the writer,
  re-chunked by ``plan_chunks`` for the view's frame step) go through
  :func:`facepipe.clustering.run.cluster_records` (``decide`` chunk after chunk, then the final
  pass). Rows: ``--clustering tracks`` (**the default**: average linkage of tracks at 0.25, then
  poorly seen groups join the person their neighbourhood names, issue 18), **the previous
  default** (the same writer decisions, the final pass without the faces' ``emb_norm``, which is
  exactly average linkage at 0.25 alone: :func:`facepipe.clustering.people.cluster_tracks` with
  ``norms=None``, what a run written before the norm was recorded gets), ``--clustering online``,
  ``--clustering seed`` (the seed's algorithm), and the default's ablations ``--no-shot-cuts``,
  ``--no-face-gate`` and ``--merge-thresh 0`` (tracks only, no final pass);
* **the peers** (``bench/peers.py``): Immich's DBSCAN (cosine distance 0.5, min 3 faces),
  connected components at cos >= 0.4, average linkage of faces at distance 0.7 and 0.8, Chinese
  whispers at 0.4, FINCH's first partition, single linkage with cannot-link at 0.4 (all faces, no
  tracks, no gate), and the previous default's average linkage of tracks at ``--merge-thresh``
  0.20 and 0.15 (the same writer decisions, the final pass at a lower threshold, no
  neighbourhood step).

Views (columns): every video set at frame steps 3, 6 and 15 (the faces and signatures of the
sampled frames that are multiples of the step, from the step-3 cache: what a run at that step
sees): the seven hand-labelled clips (debate, talk show, avengers, poppins, herapheri, ellen,
blackjournal), the reference-rule clips (hamilton, call, dance) and the TV edit, then the
low-resolution views of the hand-labelled clips (``<clip>-360``, ``<clip>-270``); then the proxy
versions (``<set>+hard``: degraded bursts, see ``labelsets.py``) of the clips and the TV edit at
the same steps; then the photo sets (step 3). The TV edit and the photo sets are also scored in
``--orders`` seeded shuffles of their pieces; their cells are means over the orders.
``bench/people_bench.py`` adds the compilations and the season.

Cells: BCubed F / pairwise F over the labelled faces that were kept, found/true people among them,
(identities over all kept faces), ``e`` the worst **per-person count error** (the ``persons`` and
``worst_count_error`` of :func:`facepipe.clustering.evaluate.evaluate`: a person's main identity
holds most of their faces; its labelled faces against the person's labelled faces, rejected ones
included; the worst over persons with at least 20 labelled faces), and ``k`` the share of
labelled faces kept when it is below 1 (a gate may reject faces as no face; rejected faces are
left out of BCubed and pairwise scores, so ``k`` must stay high). Also reported: shot-cut
precision/recall of the product's cut test on the clips whose cuts were marked by eye (event
scoring: a true cut or transition is found when a flagged pair of consecutive sampled frames
meets it; a flagged pair meeting none is a false cut), the labelled and unlabelled faces each
gate setting drops, and what becomes of the debate's three false faces (frames 546, 567, 570).

**Decision rule** (issue 18). The default must win or tie against the previous default on every
view and lose on none (a loss: BCubed or pairwise F lower by more than 0.0005, rounding), and keep
at least 95 % of the labelled faces everywhere. The run prints the verdict, the default's W/T/L
against the previous default, ``--clustering online``, the seed, every peer and the best peer on
each view (an oracle that may pick a different peer per view), and the views it loses against
that best peer. (The rule before issue 18, "no loss against the previous default and the seed,
then the best mean F", finds no eligible mode on this bench: every mode, the seed included,
loses some view to another, so it could not choose.)

Last measured: see ``bench/results/accuracy.json`` (``decision``) and README "Accuracy".
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import labelsets  # noqa: E402
import peers  # noqa: E402

from facepipe.clustering.decide import RunState, decide  # noqa: E402
from facepipe.clustering.evaluate import COUNT_ERROR_MIN_FACES, evaluate  # noqa: E402
from facepipe.clustering.final import FinalIdentities, final_identities  # noqa: E402
from facepipe.clustering.run import cluster_records  # noqa: E402
from facepipe.clustering.tracks import Tracker  # noqa: E402
from facepipe.media.plan import plan_chunks  # noqa: E402
from facepipe.records import (  # noqa: E402
    DIM,
    ChunkRecord,
    DetectedFace,
    FaceLine,
    FrameSignature,
    RunParams,
    VideoInfo,
)

EPS = 0.0005
MIN_KEPT = 0.95
STEPS = (3, 6, 15)
#: every video set: the first six, the hand-labelled clips of issue 18 and their low-resolution views
TV_SETS = (*labelsets.VIDEO_SETS, *labelsets.NEW_TV, *labelsets.lowres_sets())
#: the sets that also have a proxy (``<set>+hard``) view
PROXIED = (*labelsets.VIDEO_SETS, *labelsets.NEW_TV)
PHOTO_SETS = labelsets.PHOTO_SETS
SHUFFLED = ("tv", *PHOTO_SETS)
HARD = labelsets.PROXY_SUFFIX

DEFAULT = "--clustering tracks (default)"
PREVIOUS = "previous default (tracks, average linkage 0.25 only)"
ONLINE = "--clustering online"
SEED = "--clustering seed"

#: the product's rows: name -> (settings changes: ``facepipe run`` flags, whether the final pass
#: sees the faces' ``emb_norm``: without it the neighbourhood step never runs)
MODES: dict[str, tuple[dict[str, Any], bool]] = {
    DEFAULT: ({"clustering": "tracks"}, True),
    PREVIOUS: ({"clustering": "tracks"}, False),
    ONLINE: ({"clustering": "online"}, True),
    SEED: ({"clustering": "seed"}, True),
    "tracks --no-shot-cuts": ({"clustering": "tracks", "shot_cuts": False}, True),
    "tracks --no-face-gate": ({"clustering": "tracks", "face_gate": False}, True),
    "tracks --merge-thresh 0": ({"clustering": "tracks", "merge_thresh": 0.0}, True),
}
#: peers that are the product's chain at other settings: the previous default's final pass at a
#: lower ``--merge-thresh`` (average linkage of tracks, no neighbourhood step)
TRACK_PEERS: dict[str, tuple[dict[str, Any], bool]] = {
    "tracks avg linkage 0.20": ({"clustering": "tracks", "merge_thresh": 0.20}, False),
    "tracks avg linkage 0.15": ({"clustering": "tracks", "merge_thresh": 0.15}, False),
}

#: the peers' rows: name -> (frames, embeddings) -> label per face
PEERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Immich DBSCAN d0.5 min 3": lambda f, e: peers.dbscan(e, 0.5, 3),
    "connected components cos >= 0.4": lambda f, e: peers.connected_components(e, 0.4),
    "average linkage d0.7": lambda f, e: peers.average_linkage_faces(e, 0.7),
    "average linkage d0.8": lambda f, e: peers.average_linkage_faces(e, 0.8),
    "Chinese whispers 0.4": lambda f, e: peers.chinese_whispers(e, 0.4),
    "FINCH first partition": lambda f, e: peers.finch(e, 1),
    "single linkage + cannot-link 0.4": lambda f, e: peers.single_linkage_cannot_link(f, e, 0.4),
}

#: every peer row: the face-level peers, then the tracks-level ones
PEER_ROWS = (*PEERS, *TRACK_PEERS)

SHORT = {"debate": "debate", "talk_show": "talk show", "tv": "TV edit"}


# ---------------------------------------------------------------- views of the label sets


@dataclass
class View:
    """A label set as a run at ``step`` sees it, its pieces in ``order`` (None = as built).

    Faces in writer order (new frame, detector index), the signatures of every sampled frame,
    true cuts, all renumbered so each piece keeps its own spacing (``frames`` are the view's
    frame numbers, ``orig_frames`` the set's)."""

    key: str
    name: str
    step: int
    order: list[int] | None
    frame_count: int
    faces: dict[str, np.ndarray]
    sig_frames: np.ndarray
    sig_hist: np.ndarray
    sig_thumb: np.ndarray
    cuts: list[tuple[int, int]]
    info: VideoInfo

    @property
    def frames(self) -> np.ndarray:
        return self.faces["frames"]

    @property
    def labels(self) -> np.ndarray:
        return self.faces["labels"]


FACE_KEYS = (
    "frames", "index", "bboxes", "det_scores", "aligned", "embeddings", "crop_mean", "emb_norm",
    "labels", "degraded",
)  # fmt: skip


def make_view(data: dict[str, Any], step: int, order: list[int] | None, key: str) -> View:
    """Port of the research's ``common.view``: the sampled frames (multiples of ``step``) of each
    piece, pieces in ``order``, renumbered ``0, step, 2 step, ...``."""
    units = data["units"]
    as_built = order is None
    order = list(range(len(units))) if order is None else order
    renumber: dict[int, int] = {}
    starts: list[int] = []
    position = 0
    for u in order:
        start, stop = units[u]
        starts.append(position * step)
        for f in range(-(-start // step) * step, stop, step):
            renumber[f] = position * step
            position += 1
    new_frames = np.array([renumber.get(int(f), -1) for f in data["frames"]], dtype=np.int64)
    idx = np.flatnonzero(new_frames >= 0)
    idx = idx[np.lexsort((data["index"][idx], new_frames[idx]))]
    faces = {k: data[k][idx] for k in FACE_KEYS if k != "frames"}
    faces["frames"] = new_frames[idx]
    faces["orig_frames"] = data["frames"][idx]
    sig_new = np.array([renumber.get(int(f), -1) for f in data["sig_frames"]], dtype=np.int64)
    s_idx = np.flatnonzero(sig_new >= 0)
    s_idx = s_idx[np.argsort(sig_new[s_idx], kind="stable")]
    # true cuts in the view's numbering: piece boundaries, plus each piece's own cuts
    cuts: list[tuple[int, int]] = [(s, s) for s in starts[1:]]
    for first, last in data["cuts"]:
        a, b = next((a, b) for a, b in units if a <= first < b)
        if first == a:
            continue  # a piece boundary, already in
        sampled = range(-(-a // step) * step, b, step)
        before = [f for f in sampled if f < first]
        after = [f for f in sampled if f >= last]
        if before and after:
            cuts.append((renumber[before[-1]] + 1, renumber[after[0]]))
    frame_count = data["frame_count"] if as_built else position * step
    info = VideoInfo(data["video"], frame_count, data["fps"], data["width"], data["height"])
    return View(
        key, data["name"], step, None if as_built else order, frame_count, faces,
        sig_new[s_idx], data["sig_hist"][s_idx], data["sig_thumb"][s_idx], sorted(cuts), info,
    )  # fmt: skip


def orders_of(name: str, units: int, n_orders: int) -> list[list[int] | None]:
    """As built, plus ``n_orders`` seeded shuffles of the pieces for the shuffled sets."""
    out: list[list[int] | None] = [None]
    if labelsets.base_name(name) in SHUFFLED:
        rng = random.Random(f"{labelsets.base_name(name)}-orders")
        for _ in range(n_orders):
            perm = list(range(units))
            rng.shuffle(perm)
            out.append(perm)
    return out


def view_keys() -> list[tuple[str, str, int]]:
    """(key, set, step) in table order: TV sets by step, the proxy by step, the photo sets."""
    out = [(f"{n}@{s}", n, s) for s in STEPS for n in TV_SETS]
    out += [(f"{n}{HARD}@{s}", n + HARD, s) for s in STEPS for n in PROXIED]
    return out + [(n, n, labelsets.STEP) for n in PHOTO_SETS]


def build_views(sets: dict[str, dict[str, Any]], n_orders: int) -> dict[str, list[View]]:
    out = {}
    for key, name, step in view_keys():
        data = sets[name]
        out[key] = [make_view(data, step, o, key) for o in orders_of(name, len(data["units"]), n_orders)]
    return out


def records_of(view: View) -> list[ChunkRecord]:
    """The chunk records a run at the view's step hands its writer (``plan_chunks``, chunk size 8),
    rebuilt from the cached faces and signatures."""
    f, out = view.faces, []
    for chunk in plan_chunks(view.frame_count, view.step, labelsets.CHUNK_SIZE):
        a, b = np.searchsorted(view.frames, [chunk.start, chunk.stop])
        c, d = np.searchsorted(view.sig_frames, [chunk.start, chunk.stop])
        record = ChunkRecord(
            seq=chunk.seq,
            start=chunk.start,
            stop=chunk.stop,
            step=view.step,
            frames_sampled=int(d - c),
            faces=[
                DetectedFace(
                    frame=int(f["frames"][i]),
                    index=int(f["index"][i]),
                    bbox=f["bboxes"][i].tolist(),
                    det_score=float(f["det_scores"][i]),
                    aligned=bool(f["aligned"][i]),
                    crop_mean=float(f["crop_mean"][i]),
                    emb_norm=float(f["emb_norm"][i]),
                )
                for i in range(a, b)
            ],
            signatures=[
                FrameSignature(frame=int(view.sig_frames[k]), hist=view.sig_hist[k], thumb=view.sig_thumb[k])
                for k in range(c, d)
            ],
        )
        record.set_embeddings(f["embeddings"][a:b])
        out.append(record)
    return out


def check_views(sets: dict[str, dict[str, Any]], views: dict[str, list[View]], cache: Path) -> None:
    """Rebuilt records of each clean set at step 3, as built, must be the cached records exactly."""
    for name in (*TV_SETS, *PHOTO_SETS):
        key = f"{name}@{labelsets.STEP}" if name in TV_SETS else name
        cached = labelsets.load_records(name, cache)
        rebuilt = records_of(views[key][0])
        fields = ("seq", "start", "stop", "step", "frames_sampled", "faces", "signatures", "embeddings")
        same = len(cached) == len(rebuilt) and all(
            a.model_dump(include=set(fields)) == b.model_dump(include=set(fields))
            for a, b in zip(cached, rebuilt, strict=True)
        )
        if not same:
            raise SystemExit(f"accuracy: {key}: rebuilt chunk records differ from the cached ones")


# ---------------------------------------------------------------- the product's chain


def run_params(view: View, changes: dict[str, Any]) -> RunParams:
    """``RunParams`` of ``facepipe run VIDEO --frame-step STEP [--min-face 40] FLAGS``."""
    return RunParams.build(labelsets.run_settings(view.name, view.step, **changes), view.info)


def run_product(records: list[ChunkRecord], params: RunParams, norms: bool = True) -> np.ndarray:
    """The final identity of every face (-1: rejected as no face): the writer's decisions chunk by
    chunk, then the final pass (:func:`facepipe.clustering.run.cluster_records` on cached records).
    ``norms=False``: the same, but the final pass does not see the faces' ``emb_norm`` (as for a run
    written before it was recorded): the previous default's final pass."""
    return final_pass(records, params, norms).labels


def final_pass(records: list[ChunkRecord], params: RunParams, norms: bool = True) -> FinalIdentities:
    """:func:`run_product`'s final identities."""
    if norms:
        return cluster_records(records, params)
    state = RunState.start(params)
    lines: list[FaceLine] = []
    embeddings = []
    for record in records:
        commit = decide(state, record, params)
        lines += [line.model_copy(update={"emb_norm": None}) for line in commit.lines]
        embeddings.append(commit.embeddings)
    matrix = np.concatenate(embeddings) if embeddings else np.zeros((0, DIM), np.float32)
    return final_identities(lines, matrix, state.table, params)


def cut_flags(view: View) -> np.ndarray:
    """Per sampled frame: the product's tracker saw a shot boundary before it."""
    tracker = Tracker(view.step, True)
    flags = np.zeros(len(view.sig_frames), dtype=bool)
    for k, frame in enumerate(view.sig_frames):
        signature = FrameSignature(frame=int(frame), hist=view.sig_hist[k], thumb=view.sig_thumb[k])
        hist, thumb = signature.arrays()
        flags[k] = tracker.step(int(frame), hist, thumb, np.zeros((0, 4)), np.zeros((0, DIM)))[2]
    return flags


def score_cuts(flags: np.ndarray, frames: np.ndarray, cuts: list[tuple[int, int]]) -> dict[str, int]:
    """Event scoring (the research's): ``flags[k]`` flags the pair (frames[k-1], frames[k]); a true
    cut [first, last] is found when a flagged pair meets it; a flagged pair meeting none is false."""
    meets = np.zeros(len(frames), dtype=bool)
    found = 0
    for first, last in cuts:
        hit = np.zeros(len(frames), dtype=bool)
        hit[1:] = (frames[:-1] < last) & (frames[1:] >= first)
        meets |= hit
        found += bool((flags & hit).any())
    return {"true": len(cuts), "found": found, "false": int((flags & ~meets).sum())}


# ---------------------------------------------------------------- scoring


def score_one(labels: np.ndarray, view: View) -> dict[str, Any]:
    return score_labels(labels, view.labels)


def score_labels(labels: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """:func:`facepipe.clustering.evaluate.evaluate` over the kept faces (``labels`` >= 0), each
    person's count error against all their labelled faces (a rejected face is a missing face; a
    person with no face kept has error 1), plus ``kept``, the faces dropped and ``over_5pct`` (persons
    with >= 20 labelled faces whose count is off by more than 5 %)."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    keep = labels >= 0
    labelled = truth != ""
    counts = Counter(truth[labelled].tolist())
    result = evaluate(labels[keep].tolist(), [x or None for x in truth[keep].tolist()], labelled=counts)
    persons = result["persons"]
    for person, n in counts.items():
        persons.setdefault(str(person), {"true": n, "identity": None, "found": 0, "error": 1.0})
    errors = [p["error"] for p in persons.values() if p["true"] >= COUNT_ERROR_MIN_FACES]
    result["worst_count_error"] = max(errors, default=0.0)
    result["over_5pct"] = sum(e > 0.05 for e in errors)
    result["kept"] = float(keep[labelled].mean()) if labelled.any() else 1.0
    result["dropped_labelled"] = int((~keep & labelled).sum())
    result["dropped_unlabelled"] = int((~keep & ~labelled).sum())
    return result


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over orders of every metric, plus the worst order's F and count error; ``persons`` of the
    view as built (its first order): ``{person: [true, found, error]}``."""
    out: dict[str, Any] = {"orders": len(results)}
    for kind in ("pairwise", "bcubed"):
        out[kind] = {k: float(np.mean([r[kind][k] for r in results])) for k in ("precision", "recall", "f1")}
        out[kind]["min_f1"] = float(min(r[kind]["f1"] for r in results))
    for k in ("found", "identities", "kept", "dropped_labelled", "dropped_unlabelled", "over_5pct"):
        out[k] = float(np.mean([r[k] for r in results]))
    out["worst_count_error"] = float(max(r["worst_count_error"] for r in results))
    out["true"] = results[0]["true"]
    out["faces"] = results[0]["faces"]
    out["unlabelled"] = results[0]["unlabelled"]
    out["persons"] = {p: [v["true"], v["found"], v["error"]] for p, v in results[0]["persons"].items()}
    return out


def false_faces(view: View, labels: np.ndarray) -> dict[str, int] | None:
    """The debate's false faces in the view: how many, how many rejected, and how many identities
    are made of them alone (what the product must avoid)."""
    if labelsets.base_name(view.name) != "debate":
        return None
    mask = np.isin(view.faces["orig_frames"], labelsets.DEBATE_FALSE_FACE_FRAMES) & (view.labels == "")
    own = {int(x) for x in labels[mask] if x >= 0 and not (labels[~mask] == x).any()}
    return {"faces": int(mask.sum()), "rejected": int((labels[mask] < 0).sum()), "own_identities": len(own)}


def has_cut_truth(name: str) -> bool:
    """The set's shot cuts were marked by eye (or it is rendered from pieces of such clips)."""
    low = labelsets.lowres_of(name)
    base = low[0] if low else labelsets.base_name(name)
    return base in labelsets.CLIP_CUTS or base in labelsets.RENDERED


def score_all(views: dict[str, list[View]]) -> dict[str, Any]:
    rows = [*MODES, *PEERS, *TRACK_PEERS]
    results: dict[str, dict[str, Any]] = {row: {} for row in rows}
    debate: dict[str, dict[str, Any]] = {row: {} for row in MODES}
    cuts: dict[str, dict[str, Any]] = {}
    seconds = dict.fromkeys(rows, 0.0)
    for key, runs in views.items():
        per_row: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
        tally = {"true": 0, "found": 0, "false": 0}
        for view in runs:
            records = records_of(view)
            for row, (changes, norms) in {**MODES, **TRACK_PEERS}.items():
                t0 = time.perf_counter()
                labels = run_product(records, run_params(view, changes), norms)
                seconds[row] += time.perf_counter() - t0
                per_row[row].append(score_one(labels, view))
                ff = false_faces(view, labels)
                if ff is not None and row in debate:
                    debate[row][key] = ff
            for row, fn in PEERS.items():
                t0 = time.perf_counter()
                labels = fn(view.frames, view.faces["embeddings"])
                seconds[row] += time.perf_counter() - t0
                per_row[row].append(score_one(labels, view))
            scored_cuts = HARD not in key and has_cut_truth(view.name)  # a proxy has its clip's cuts
            if scored_cuts:
                for k, v in score_cuts(cut_flags(view), view.sig_frames, view.cuts).items():
                    tally[k] += v
        for row in rows:
            results[row][key] = aggregate(per_row[row])
        if HARD not in key and has_cut_truth(runs[0].name):
            cuts[key] = tally
    return {"results": results, "debate_false_faces": debate, "cuts": cuts, "seconds": seconds}


def verdict(result: dict[str, Any], base: dict[str, Any]) -> str:
    """'win', 'tie' or 'loss' on one view (both F must hold)."""
    d_pw = result["pairwise"]["f1"] - base["pairwise"]["f1"]
    d_b3 = result["bcubed"]["f1"] - base["bcubed"]["f1"]
    if d_pw < -EPS or d_b3 < -EPS:
        return "loss"
    return "win" if d_pw > EPS or d_b3 > EPS else "tie"


def best_of(results: dict[str, dict[str, Any]], rows: list[str], key: str) -> dict[str, Any]:
    """The best pairwise and the best BCubed F any of ``rows`` reaches on view ``key``."""
    return {
        kind: {"f1": max(results[row][key][kind]["f1"] for row in rows)} for kind in ("pairwise", "bcubed")
    }


def group_of(key: str) -> str:
    """``tv`` (the clips and the TV edit as they are), ``lowres``, ``proxy`` or ``photos``."""
    name = key.partition("@")[0]
    if HARD in key:
        return "proxy"
    if "@" not in key:
        return "photos"
    return "lowres" if labelsets.lowres_of(name) else "tv"


GROUPS = ("tv", "lowres", "proxy", "photos")


def tally(per: dict[str, Any], base: Callable[[str], dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """Wins (views), ties (count) and losses (views) of one row against ``base`` on ``keys``."""
    verdicts = {k: verdict(per[k], base(k)) for k in keys}
    return {
        "win": [k for k, v in verdicts.items() if v == "win"],
        "tie": sum(v == "tie" for v in verdicts.values()),
        "loss": [k for k, v in verdicts.items() if v == "loss"],
    }


def decide_default(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The decision rule (module docstring): for every row its W/T/L against the previous default,
    ``--clustering online``, the seed and the best peer on each view (the best can be a different
    peer on each view), its mean/min F per group; for the default also against every peer; and
    whether the default meets the rule."""
    keys = list(results[DEFAULT])
    summary: dict[str, Any] = {}
    for row, per in results.items():
        others = [r for r in PEER_ROWS if r != row]
        tallies = {
            name: tally(per, lambda k, o=other: results[o][k], keys)
            for name, other in (("vs_previous", PREVIOUS), ("vs_online", ONLINE), ("vs_seed", SEED))
        }
        tallies["vs_best_peer"] = tally(per, lambda k, o=others: best_of(results, o, k), keys)
        means = {}
        for group in GROUPS:
            f = [per[k]["bcubed"]["f1"] for k in keys if group_of(k) == group]
            means[group] = {"mean": float(np.mean(f)), "min": float(np.min(f))}
        summary[row] = {
            **tallies,
            "bcubed": means,
            "min_precision": float(min(per[k]["bcubed"]["precision"] for k in keys)),
            "min_kept": float(min(per[k]["kept"] for k in keys)),
            "views_found_ne_true": sum(abs(per[k]["found"] - per[k]["true"]) > 0.01 for k in keys),
            "worst_count_error": float(max(per[k]["worst_count_error"] for k in keys)),
            "over_5pct": float(sum(per[k]["over_5pct"] for k in keys)),
        }
    default = summary[DEFAULT]
    vs_peers = {p: tally(results[DEFAULT], lambda k, p=p: results[p][k], keys) for p in PEER_ROWS}
    return {
        "rows": summary,
        "default_vs_peers": vs_peers,
        "rule_met": not default["vs_previous"]["loss"] and default["min_kept"] >= MIN_KEPT,
        "default_wins_over_previous": len(default["vs_previous"]["win"]),
    }


# ---------------------------------------------------------------- output


def cell(r: dict[str, Any]) -> str:
    kept = "" if r["kept"] > 0.9995 else f" k{r['kept']:.3f}"
    return (
        f"{r['bcubed']['f1']:.3f}/{r['pairwise']['f1']:.3f} {r['found']:.3g}/{r['true']} "
        f"({r['identities']:.3g}) e{r['worst_count_error']:.2f}{kept}"
    )


def title(key: str) -> str:
    name, _, step = key.partition("@")
    base = labelsets.base_name(name)
    label = SHORT.get(base, base) + ("+hard" if name != base else "")
    return f"{label}@{step}" if step else label


def table(results: dict[str, dict[str, Any]], keys: list[str]) -> str:
    lines = ["| row | " + " | ".join(title(k) for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for row, per in results.items():
        lines.append(f"| {row} | " + " | ".join(cell(per[k]) for k in keys) + " |")
    return "\n".join(lines)


def summary_table(decision: dict[str, Any]) -> str:
    lines = [
        "| row | clips mean / min B3 F | low-res | proxy | photo sets | min P | views found != true "
        "| worst e | persons > 5 % | min kept | vs previous W/T/L | vs online | vs seed | vs best peer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, s in decision["rows"].items():
        b = s["bcubed"]
        wtl = [
            f"{len(s[t]['win'])}/{s[t]['tie']}/{len(s[t]['loss'])}"
            for t in ("vs_previous", "vs_online", "vs_seed", "vs_best_peer")
        ]
        groups = [f"{b[g]['mean']:.4f} / {b[g]['min']:.3f}" for g in GROUPS]
        lines.append(
            f"| {row} | "
            + " | ".join(groups)
            + f" | {s['min_precision']:.3f} | {s['views_found_ne_true']} | "
            f"{s['worst_count_error']:.2f} | {s['over_5pct']:.3g} | {s['min_kept']:.3f} | "
            + " | ".join(wtl)
            + " |"
        )
    return "\n".join(lines)


def cuts_table(cuts: dict[str, dict[str, int]]) -> str:
    def pr(keys: list[str]) -> str:
        t = {k: sum(cuts[x][k] for x in keys) for k in ("true", "found", "false")}
        p = t["found"] / (t["found"] + t["false"]) if t["found"] + t["false"] else 1.0
        r = t["found"] / t["true"] if t["true"] else 1.0
        return f"P {p:.2f} R {r:.2f} ({t['found']}/{t['true']} +{t['false']})"

    lines = ["| view | cuts found / true, + false cuts |", "|---|---|"]
    for key, t in cuts.items():
        lines.append(f"| {title(key)} | {t['found']}/{t['true']} +{t['false']} |")
    real = ("debate", "talk_show", "hamilton", "call", "dance")
    low = [n for n in labelsets.lowres_sets() if has_cut_truth(n)]
    lines += ["", "| group | " + " | ".join(f"@{s}" for s in STEPS) + " |", "|---|---|---|---|"]
    lines.append("| real clips | " + " | ".join(pr([f"{n}@{s}" for n in real]) for s in STEPS) + " |")
    lines.append("| their low-res views | " + " | ".join(pr([f"{n}@{s}" for n in low]) for s in STEPS) + " |")
    lines.append("| TV edit (all orders) | " + " | ".join(pr([f"tv@{s}"]) for s in STEPS) + " |")
    lines.append(f"| photo sets (all orders, step 3) | {pr(list(PHOTO_SETS))} | | |")
    return "\n".join(lines)


def gate_table(results: dict[str, dict[str, Any]]) -> str:
    rows = (DEFAULT, "tracks --no-face-gate", "tracks --merge-thresh 0")
    keys = list(results[DEFAULT])
    lines = ["| view | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for key in keys:
        cells = [
            f"{results[r][key]['dropped_labelled']:.3g} / {results[r][key]['dropped_unlabelled']:.3g}"
            for r in rows
        ]
        lines.append(f"| {title(key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def debate_lines(debate: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for row, per in debate.items():
        cells = [
            f"{title(k)} {v['rejected']}/{v['faces']} rejected, {v['own_identities']} own id"
            for k, v in per.items()
        ]
        out.append(f"- {row}: " + "; ".join(cells))
    return out


def compare_run(out_dir: Path, name: str, cache: Path) -> int:
    """Check that the offline chain reproduces a real run: ``facepipe run``'s ``faces.jsonl`` (and its
    rejected faces) against :func:`run_product` on set ``name``'s cached records at the run's own
    parameters (``summary.json``), face for face."""
    from facepipe.app.scores import load_run_faces
    from facepipe.app.summary import Summary

    summary = Summary.read(out_dir / "summary.json")
    params = RunParams.model_validate(summary.params)
    data = labelsets.ensure_sets(cache, names=(name,), proxies=())[name]
    if params.min_face != data["min_face"] or params.frame_step % labelsets.STEP or params.blur_enable:
        sys.exit(f"accuracy: the run's min-face/frame step/blur gate cannot be rebuilt from the {name} cache")
    view = make_view(data, params.frame_step, None, name)
    labels = run_product(records_of(view), params)
    kept = np.flatnonzero(labels >= 0)
    offline = [
        (int(view.frames[i]), [round(float(v), 2) for v in view.faces["bboxes"][i]], int(labels[i]))
        for i in kept
    ]
    real = [
        (f["frame"], [round(float(v), 2) for v in f["bbox"]], f["identity"]) for f in load_run_faces(out_dir)
    ]
    rejected_offline = [
        (int(view.frames[i]), [round(float(v), 2) for v in view.faces["bboxes"][i]])
        for i in np.flatnonzero(labels < 0)
    ]
    rejected_real = [(f.frame, [round(float(v), 2) for v in f.bbox]) for f in summary.rejected_faces]
    same = offline == real and rejected_offline == rejected_real
    scores = score_one(labels, view)
    print(
        f"{out_dir} vs the offline chain on {name} at frame step {params.frame_step} "
        f"(--clustering {params.clustering}): {len(real)} faces, {len(rejected_real)} rejected in the run; "
        f"{len(offline)} faces, {len(rejected_offline)} rejected offline: "
        + ("identical face for face (frame, box, identity)" if same else "DIFFERENT")
    )
    print(
        f"offline scores: BCubed F {scores['bcubed']['f1']:.4f}, pairwise F {scores['pairwise']['f1']:.4f}, "
        f"found/true {scores['found']}/{scores['true']}, identities {scores['identities']}"
    )
    return 0 if same else 1


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
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "accuracy.json", help="results file"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the label sets (re-runs the models)")
    parser.add_argument(
        "--compare-run",
        nargs=2,
        metavar=("OUT_DIR", "SET"),
        help="only check that the offline chain reproduces a real run of SET's video (its --out folder)",
    )
    args = parser.parse_args(argv)
    if args.compare_run:
        return compare_run(Path(args.compare_run[0]), args.compare_run[1], args.cache)

    started = time.perf_counter()
    sets = labelsets.ensure_sets(args.cache, args.rebuild, (*TV_SETS, *PHOTO_SETS), PROXIED)
    views = build_views(sets, args.orders)
    check_views(sets, views, args.cache)
    prepared = time.perf_counter() - started
    scored = score_all(views)
    results = scored["results"]
    decision = decide_default(results)
    elapsed = time.perf_counter() - started

    keys = list(results[DEFAULT])
    print("cells: BCubed F / pairwise F, found/true people among labelled faces (identities over all kept")
    print("faces), e = worst per-person count error (persons with >= 20 labelled faces), k = share of")
    print("labelled faces kept when below 1; shuffled sets: mean over orders (e: the worst order)\n")
    headings = {
        "tv": "clips and TV edit",
        "lowres": "low-resolution views",
        "proxy": "proxy (degraded bursts)",
    }
    groups = [
        (f"{headings[g]}, frame step {s}", [k for k in keys if k.endswith(f"@{s}") and group_of(k) == g])
        for g in headings
        for s in STEPS
    ]
    groups.append(("photo sets (frame step 3)", [k for k in keys if group_of(k) == "photos"]))
    for heading, ks in groups:
        print(f"### {heading}\n\n{table(results, ks)}\n")
    print(f"### summary\n\n{summary_table(decision)}\n")
    print(f"### shot cuts (the product's cut test; event scoring)\n\n{cuts_table(scored['cuts'])}\n")
    print(f"### faces the gates drop: labelled / unlabelled (mean over orders)\n\n{gate_table(results)}\n")
    print("### the debate's false faces (frames 546, 567, 570)\n")
    print("\n".join(debate_lines(scored["debate_false_faces"])) + "\n")
    print("### decision rule (issue 18)\n")
    default = decision["rows"][DEFAULT]
    print(
        f"- the default wins or ties against the previous default on every view, loses on none, keeps >= "
        f"{MIN_KEPT}: {'MET' if decision['rule_met'] else 'NOT MET'} "
        f"({decision['default_wins_over_previous']} wins)"
    )
    for name, label in (
        ("vs_previous", "the previous default"),
        ("vs_online", "--clustering online"),
        ("vs_seed", "the seed"),
        ("vs_best_peer", "the best peer on each view"),
    ):
        t = default[name]
        wins, losses = [title(k) for k in t["win"]], [title(k) for k in t["loss"]]
        print(
            f"- {DEFAULT} against {label}: {len(wins)} wins {wins}, {t['tie']} ties, "
            f"{len(losses)} losses {losses}"
        )
    for peer, t in decision["default_vs_peers"].items():
        losses = [title(k) for k in t["loss"]]
        print(f"- against {peer}: {len(t['win'])}/{t['tie']}/{len(losses)} {losses}")
    print(
        f"\n({len(results)} rows x {len(keys)} views, {sum(map(len, views.values()))} with orders; "
        f"{prepared:.0f} s loading, {elapsed:.0f} s in all)"
    )

    payload = {
        "rule": " ".join(__doc__.split("**Decision rule** (issue 18).")[1].split("Last measured")[0].split()),
        "views": {
            key: {
                "set": runs[0].name,
                "step": runs[0].step,
                "orders": len(runs),
                "faces": len(runs[0].frames),
                "labelled": int((runs[0].labels != "").sum()),
                "people": len(set(runs[0].labels[runs[0].labels != ""].tolist())),
                "degraded": int((runs[0].faces["degraded"] > 0).sum()),
            }
            for key, runs in views.items()
        },
        "rows": {
            **{
                row: {"product": changes, "final_pass_sees_norms": norms}
                for row, (changes, norms) in MODES.items()
            },
            **{row: {"peer": True} for row in PEERS},
            **{
                row: {"peer": True, "product": c, "final_pass_sees_norms": n}
                for row, (c, n) in TRACK_PEERS.items()
            },
        },
        "results": results,
        "cuts": scored["cuts"],
        "debate_false_faces": scored["debate_false_faces"],
        "decision": decision,
        "seconds": {"total": elapsed, "loading": prepared, **scored["seconds"]},
    }
    args.json.write_text(json.dumps(_rounded(payload), indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
