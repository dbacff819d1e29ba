"""A season's outputs in ``OUT/series/``: the series bank, ``faces.jsonl``, ``summary.json``,
``identities.csv``, and the summary printed at the end (the report is
:mod:`facepipe.app.report.series`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from facepipe.app.banks import write_series_bank
from facepipe.app.files import write_atomically
from facepipe.clustering.series import EpisodeResult, SeriesBank, SeriesResult


def write_series(
    out: Path, result: SeriesResult, episodes: list[EpisodeResult], params: dict[str, Any]
) -> dict[str, Any]:
    """``bank.npz``, ``faces.jsonl``, ``summary.json`` and ``identities.csv`` in ``out``; returns
    the summary (the report is built from these files)."""
    out.mkdir(parents=True, exist_ok=True)
    bank = result.bank
    write_series_bank(result.bank, out / "bank.npz")
    screen = _screen_seconds(bank)
    new_eps = set(result.episode_index)
    with open(out / "faces.jsonl", "wb") as fh:
        for k in np.flatnonzero(np.isin(bank.face_episodes, list(new_eps))):
            e = int(bank.face_episodes[k])
            frame = int(bank.face_frames[k])
            line = {
                "video": str(bank.videos[e]),
                "episode": str(bank.episodes[e]),
                "frame": frame,
                "time_s": round(frame / float(bank.fps[e]), 3),
                "bbox": [round(float(v), 2) for v in bank.face_bboxes[k]],
                "identity": int(bank.face_identities[k]),
                "episode_identity": int(bank.face_episode_identities[k]),
            }
            fh.write(orjson.dumps(line) + b"\n")
    seen_now = {int(i) for i in np.unique(bank.face_identities[np.isin(bank.face_episodes, list(new_eps))])}
    summary = {
        "episodes": [
            {
                "name": ep.series_name or ep.name,
                "video": ep.video,
                "status": "failed" if ep.final is None else ("incomplete" if ep.problem else "done"),
                "problem": ep.problem,
                "faces": 0 if ep.final is None else len(ep.final.faces),
                "identities": 0 if ep.final is None else len(ep.final),
            }
            for ep in episodes
        ],
        "all_episodes": bank.episodes.tolist(),
        "identities": len(bank.identity_ids),
        "identities_in_these_episodes": len(seen_now),
        "known": sorted(seen_now & result.known),
        "new": sorted(seen_now - result.known),
        "conflicts": [
            {
                "bank_ids": [c.a, c.b],
                "episode": c.episode,
                "episode_identity": c.identity,
                "linkages": [c.linkage_a, c.linkage_b],
                "note": c.note,
            }
            for c in result.conflicts
        ],
        "counts": {str(int(i)): int(c) for i, c in zip(bank.identity_ids, bank.counts, strict=True)},
        "episode_counts": {
            str(int(i)): {str(name): int(c) for name, c in zip(bank.episodes, row, strict=True) if c}
            for i, row in zip(bank.identity_ids, bank.episode_counts, strict=True)
        },
        "screen_seconds": {
            str(int(i)): {str(name): s for name, s in zip(bank.episodes, row, strict=True) if s}
            for i, row in zip(bank.identity_ids, screen.tolist(), strict=True)
        },
        "missing": [ep.name for ep in episodes if ep.final is None],
        "params": params,
    }
    write_atomically(out / "summary.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    _write_csv(out / "identities.csv", bank, screen)
    return summary


def _screen_seconds(bank: SeriesBank) -> np.ndarray:
    """(N, E) screen time: faces x frame step / fps of each episode."""
    per_face = bank.frame_steps.astype(np.float64) / np.maximum(bank.fps, 1e-9)
    return np.round(bank.episode_counts * per_face[None, :], 1)


def _write_csv(path: Path, bank: SeriesBank, screen: np.ndarray) -> None:
    """One row per person, a screen-time column (seconds) per episode: for spreadsheets."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["identity", "faces", "screen_s", "episodes", *(f"{name} (s)" for name in bank.episodes)]
        )
        order = np.lexsort((bank.identity_ids, -screen.sum(axis=1)))
        for r in order:
            writer.writerow(
                [
                    int(bank.identity_ids[r]),
                    int(bank.counts[r]),
                    round(float(screen[r].sum()), 1),
                    int((bank.episode_counts[r] > 0).sum()),
                    *(f"{s:g}" for s in screen[r]),
                ]
            )


def format_series(summary: dict[str, Any], out: Path) -> str:
    """The human summary of the series pass."""
    n_eps = len(summary["episodes"])
    lines = [
        f"series: {n_eps} episode(s) now, {len(summary['all_episodes'])} in the bank; "
        f"{summary['identities']} people in the bank, {summary['identities_in_these_episodes']} in "
        f"these episodes ({len(summary['known'])} known, {len(summary['new'])} new)",
    ]
    for ep in summary["episodes"]:
        state = {
            "done": "",
            "incomplete": f"  INCOMPLETE: {ep['problem']}",
            "failed": f"  FAILED: {ep['problem']}",
        }
        lines.append(
            f"  {ep['name']}: {ep['faces']} faces, {ep['identities']} identities{state[ep['status']]}"
        )
    for conflict in summary["conflicts"]:
        lines.append(f"  NOTE: {conflict['note']}")  # names both ids, the linkages, and what to do
    lines.append(f"  series: {out}/report.html, identities.csv, bank.npz, faces.jsonl, summary.json")
    return "\n".join(lines)
