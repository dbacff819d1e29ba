"""The views of issue 18's bench, and what the writer hands the final pass on each.

    python bench/people_cases.py [--cache DIR]

Builds (from ``bench/labelsets.py``'s cache; the models run only for sets that are missing) every
view ``bench/people_bench.py`` scores, and prints what the writer makes of each: faces, tracks,
people. A **view** is one label set as a run at a frame step sees it (``accuracy.View``: the
cached chunk records re-chunked for the step); a **case** is the writer's output on a view with
``--clustering tracks`` (:func:`writer_case`: the cached records through
:func:`facepipe.clustering.decide.decide` chunk after chunk, stopped just before the final pass):
per face its track, frame, suspect flag, unit embedding, raw ArcFace norm (``emb_norm``), box and
true label ('' unknown). :func:`facepipe.clustering.people.cluster_tracks` on a case is the final
pass (``people_bench.py`` checks it equals :func:`facepipe.clustering.run.cluster_records` on
every view), so the pass's constants can be swept on cases in seconds (``people_bench.py
--sweep``).

Views (``key``):

* every hand-labelled clip (``labelsets.TV_LABELLED``: debate, talk_show, avengers, poppins,
  herapheri, ellen, blackjournal), its low-resolution views (``<clip>-360``, ``<clip>-270``), the
  reference-rule clips (hamilton, call, dance) and the TV edit, each at frame steps 3, 6, 15; the
  proxy (``<set>+hard``: degraded bursts) of the clips and the TV edit at the same steps; the
  photo sets (step 3);
* ``compilation@S``: every labelled video clip (the 7 hand-labelled ones, then hamilton, call,
  dance) played one after the other as one long video (each clip's sampled frames renumbered to
  follow the last one's; the tracker sees the cut between clips); labels of the hand-labelled
  clips are prefixed by the clip, so 54 people of 10 shows: people who look alike across shows
  must stay apart;
* ``compilation-270@S``: the same with every hand-labelled clip at 480x270 (``<clip>-270``, where
  the clip is larger); ``compilation+hard@S``: with every clip's proxy (degraded bursts);
* ``season-ep1@S``, ``season-ep2@S``: the same clips split in halves: episode 1 is the first half
  of every clip, episode 2 the second halves; ``people_bench.py`` scores ``season@S``, the two
  episodes joined by the series pass (:func:`facepipe.clustering.series.series_pass`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import accuracy  # noqa: E402
import labelsets  # noqa: E402

from facepipe.clustering.decide import RunState, decide  # noqa: E402
from facepipe.records import VideoInfo  # noqa: E402

STEPS = accuracy.STEPS
TV = tuple(labelsets.TV_LABELLED)
REF_CLIPS = ("hamilton", "call", "dance")
#: the clips of the compilation and of the season, in play order
COMPILED = (*TV, *REF_CLIPS)
#: the sets with a proxy view
PROXIED = (*TV, *REF_CLIPS, "tv")
#: the views made of several clips
COMBOS = ("compilation", "compilation-270", "compilation+hard", "season-ep1", "season-ep2")


def set_names() -> list[str]:
    return [*TV, *labelsets.lowres_sets(), *REF_CLIPS, "tv", *labelsets.PHOTO_SETS]


def view_keys() -> list[tuple[str, str, int]]:
    """(key, set, step) for every single-set view."""
    out = []
    for name in [*TV, *labelsets.lowres_sets(), *REF_CLIPS, "tv"]:
        out += [(f"{name}@{s}", name, s) for s in STEPS]
    for name in PROXIED:
        out += [(f"{name}{labelsets.PROXY_SUFFIX}@{s}", name + labelsets.PROXY_SUFFIX, s) for s in STEPS]
    out += [(n, n, labelsets.STEP) for n in labelsets.PHOTO_SETS]
    return out


def concat_views(
    key: str, parts: list[tuple[str, accuracy.View, tuple[int, int] | None]], step: int
) -> accuracy.View:
    """One view playing ``parts`` one after the other: ``(prefix, view, (first, stop) frame range or
    None)``; labels get ``prefix:`` where a prefix is given. A cut separates consecutive parts."""
    faces: dict[str, list[np.ndarray]] = {k: [] for k in (*accuracy.FACE_KEYS, "orig_frames")}
    sig_frames, sig_hist, sig_thumb, cuts = [], [], [], []
    offset = 0
    for prefix, view, window in parts:
        lo, hi = window if window else (0, view.frame_count)
        fsel = (view.frames >= lo) & (view.frames < hi)
        ssel = (view.sig_frames >= lo) & (view.sig_frames < hi)
        first = int(view.sig_frames[ssel][0])
        last = int(view.sig_frames[ssel][-1])
        shift = offset - first
        for k in faces:
            values = view.faces[k][fsel]
            if k == "frames":
                values = values + shift
            elif k == "labels" and prefix:
                values = np.array([f"{prefix}:{x}" if x else "" for x in values], dtype=np.str_)
            faces[k].append(values)
        sig_frames.append(view.sig_frames[ssel] + shift)
        sig_hist.append(view.sig_hist[ssel])
        sig_thumb.append(view.sig_thumb[ssel])
        if offset:
            cuts.append((offset, offset))
        offset = last + shift + step
    merged = {k: np.concatenate(v) for k, v in faces.items()}
    info = VideoInfo(f"{key}.mp4", offset, 25.0, 1280, 720)
    return accuracy.View(
        key, key.split("@")[0], step, None, offset, merged, np.concatenate(sig_frames),
        np.concatenate(sig_hist), np.concatenate(sig_thumb), cuts, info,
    )  # fmt: skip


def build_views(cache: Path) -> dict[str, accuracy.View]:
    """Every view, single-set views first, then the compilations and season episodes by step."""
    sets = labelsets.ensure_sets(cache, False, set_names(), proxies=PROXIED)
    views = {key: accuracy.make_view(sets[name], step, None, key) for key, name, step in view_keys()}
    for step in STEPS:
        for kind in COMBOS:
            parts = []
            for clip in COMPILED:
                name = clip
                if kind == "compilation-270" and f"{clip}-270" in sets:
                    name = f"{clip}-270"
                elif kind == "compilation+hard":
                    name = clip + labelsets.PROXY_SUFFIX
                view = views[f"{name}@{step}"]
                prefix = clip if clip in TV else ""
                if kind.startswith("compilation"):
                    parts.append((prefix, view, None))
                else:
                    mid = (view.frame_count // 2) // step * step
                    parts.append(
                        (prefix, view, (0, mid) if kind == "season-ep1" else (mid, view.frame_count))
                    )
            key = f"{kind}@{step}"
            views[key] = concat_views(key, parts, step)
    return views


def writer_case(view: accuracy.View) -> dict[str, np.ndarray]:
    """The writer's faces of a view (``--clustering tracks``), with what a final pass may use."""
    params = accuracy.run_params(view, {"clustering": "tracks"})
    state = RunState.start(params)
    lines = []
    for record in accuracy.records_of(view):
        lines += decide(state, record, params).lines
    f = view.faces
    if [line.frame for line in lines] != f["frames"].tolist():
        raise RuntimeError(f"{view.key}: the writer's faces are not the view's")
    return {
        "tracks": np.array([line.track for line in lines], dtype=np.int64),
        "frames": f["frames"].astype(np.int64),
        "suspect": np.array([bool(line.suspect) for line in lines], dtype=bool),
        "embeddings": f["embeddings"].astype(np.float32),
        "norms": np.array([np.nan if line.emb_norm is None else line.emb_norm for line in lines]),
        "boxes": f["bboxes"].astype(np.float64),
        "labels": f["labels"].astype(np.str_),
    }


def describe(key: str, view: accuracy.View, case: dict[str, Any]) -> str:
    people = len(set(case["labels"].tolist()) - {""})
    labelled = int((case["labels"] != "").sum())
    return (
        f"| {key} | {len(case['tracks'])} | {labelled} | {len(np.unique(case['tracks']))} | {people} | "
        f"{int(case['suspect'].sum())} | {len(view.sig_frames)} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=labelsets.CACHE, help="label-set cache folder")
    args = parser.parse_args(argv)
    views = build_views(args.cache)
    print("| view | faces | labelled | tracks | people | suspect faces | sampled frames |")
    print("|---|---|---|---|---|---|---|")
    for key, view in views.items():
        print(describe(key, view, writer_case(view)))
    print(f"\n{len(views)} views")
    return 0


if __name__ == "__main__":
    sys.exit(main())
