"""``--episode``: one run per contender (and A with ``--episode-baseline``) on a long video.

Besides the usual figures, each run records its roles' RSS and CPU every second (``timeline``,
from :class:`harness.procs.TreeSampler`) and its ``stage_seconds`` from ``summary.json``;
:func:`episode_report` shows memory over time at 10, 50, 90 and 100 % of the run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from harness.contenders import Contender, run_a, run_b, video_facts


def run_episode(args: argparse.Namespace, contenders: list[Contender], workdir: Path) -> dict[str, Any]:
    """One run per contender (and A with --episode-baseline) on a long video: wall, stages, memory."""
    frames, size = video_facts(args.video)
    results: dict[str, Any] = {
        "mode": "episode",
        "when": workdir.name,
        "video": str(args.video),
        "video_frames": frames,
        "video_size": size,
        "frame_step": args.frame_step,
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_at_start": os.getloadavg(),
        "commands": {c.name: c.describe() for c in contenders},
        "runs": {},
    }
    if args.episode_baseline:
        print("bench: episode: A", file=sys.stderr, flush=True)
        results["runs"]["A"] = run_a(args, workdir / "A")
    for contender in contenders:
        print(f"bench: episode: {contender.name}", file=sys.stderr, flush=True)
        run = run_b(args, workdir / contender.name, contender=contender)
        results["runs"][contender.name] = run
        print(f"bench: episode: {contender.name} {run['wall_s']:.1f} s", file=sys.stderr, flush=True)
    results["loadavg_at_end"] = os.getloadavg()
    return results


def episode_report(results: dict[str, Any]) -> str:
    lines = [
        f"video {results['video']} ({results['video_frames']} frames, {results['video_size']}), "
        f"frame step {results['frame_step']}, {results['cpus']} CPUs",
        "",
        "| run | wall | CPU s | cores | peak PSS MB | faces / ids | decoded / video frames | other load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, r in results["runs"].items():
        dec = r.get("decode") or {}
        lines.append(
            f"| {n} | {r['wall_s']:.0f} s ({r['wall_s'] / 60:.2f} min) | {r['cpu_s']:.0f} "
            f"| {r['cores_used']:.2f} "
            f"| {r['peak_tree_pss_mb']:.0f} | {r['faces']} / {r['identities']} "
            f"| {dec.get('frames_decoded', r.get('frames_read'))} / {dec.get('video_frames', '?')} "
            f"| {r['other_cores']:.2f} |"
        )
    lines += [
        "",
        "Stage seconds (workers' own timers) and memory over time per role (RSS MB at 10/50/90/100% "
        "of the run):",
        "",
    ]
    for n, r in results["runs"].items():
        st = r.get("stage_seconds") or r.get("stage_s") or {}
        lines.append(f"- {n}: " + ", ".join(f"{k} {v:.1f} s" for k, v in st.items()))
        timeline = r.get("timeline") or []
        if timeline:
            roles = sorted({role for _, by in timeline for role in by})
            for role in roles:
                points = [by.get(role, [0, 0])[0] for _, by in timeline if role in by]
                if len(points) < 2:
                    continue
                marks = [points[min(len(points) - 1, int(len(points) * q))] for q in (0.1, 0.5, 0.9)]
                lines.append(
                    f"  - {role}: " + " / ".join(f"{m:.0f}" for m in marks) + f" / {points[-1]:.0f} MB"
                    f" (min {min(points[len(points) // 10 :]):.0f}, max {max(points):.0f})"
                )
    return "\n".join(lines)
