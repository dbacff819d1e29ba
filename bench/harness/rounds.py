"""The default mode: rounds of A and every contender (A B1 B2 ..., A B1 B2 ...), then the extras.

Each round runs A and then every contender, and compares each contender's faces with A's. After
the rounds: the ``--reference`` runs (untimed), one untimed run of the first contender with
``MONITOR`` attached (:class:`harness.probes.CommandLog`), and the chunk record sizing
(:mod:`harness.sizes`). :func:`run_rounds` returns the results file's content, less its table.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from harness.contenders import Contender, facepipe_cmd, run_a, run_b
from harness.faces import compare
from harness.probes import CommandLog
from harness.report import aggregate
from harness.sizes import message_sizes


def run_rounds(
    args: argparse.Namespace,
    references: list[Contender],
    workdir: Path,
    stamp: str,
    frames: int,
    size: str,
    code: dict[str, Any] | None,
) -> dict[str, Any]:
    """Every round, the reference runs, the instrumented run and the sizing, as one results dict."""
    a_runs: list[dict[str, Any]] = []
    b_runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in args.contenders}
    for i in range(1, args.pairs + 1):
        a = run_a(args, workdir / f"A{i}")
        a_runs.append(a)
        print(
            f"bench: round {i}: A {a['wall_s']:.1f} s (load {a['loadavg_before']})",
            file=sys.stderr,
            flush=True,
        )
        for contender in args.contenders:
            b = run_b(args, workdir / f"{contender.name}{i}", contender=contender)
            b_runs[contender.name].append(b)
            cmp = compare(workdir / f"A{i}", workdir / f"{contender.name}{i}")
            print(
                f"bench: round {i}: {contender.name} {b['wall_s']:.1f} s "
                f"(A/B {a['wall_s'] / b['wall_s']:.2f}), "
                f"identical to A: {cmp['identical']}",
                file=sys.stderr,
                flush=True,
            )
    ref_runs = {}
    for ref in references:
        print(f"bench: reference {ref.name} (untimed)", file=sys.stderr, flush=True)
        ref_runs[ref.name] = run_b(args, workdir / f"ref-{ref.name}", contender=ref)

    last = args.pairs
    results: dict[str, Any] = {
        "when": stamp,
        "workdir": str(workdir),
        "video": str(args.video),
        "video_frames": frames,
        "video_size": size,
        "frame_step": args.frame_step,
        "sim_thresh": args.sim_thresh,
        "refine_limit": args.refine_limit,
        "code": code,
        "pairs": args.pairs,
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_at_start": [a_runs[0]["loadavg_before"]],
        "loadavg_at_end": os.getloadavg(),
        "A": {
            "command": shlex.join(
                ["python", "bench/baseline.py", str(args.video), "--frame-step", str(args.frame_step)]
                + ["--sim-thresh", str(args.sim_thresh), "--refine-limit", str(args.refine_limit)]
            )
            + (f" {args.baseline_args}" if args.baseline_args else ""),
            "aggregate": aggregate(a_runs),
            "runs": a_runs,
        },
        "contenders": {},
        "references": {},
        "A_runs_deterministic": all(
            compare(workdir / "A1", workdir / f"A{i}")["identical"] for i in range(2, args.pairs + 1)
        ),
    }
    for contender in args.contenders:
        runs = b_runs[contender.name]
        agg = aggregate(runs)
        compares = {"A": compare(workdir / f"A{last}", workdir / f"{contender.name}{last}")}
        for ref in references:
            compares[ref.name] = compare(workdir / f"ref-{ref.name}", workdir / f"{contender.name}{last}")
        results["contenders"][contender.name] = {
            "command": " ".join(args.contender_env + [shlex.join(facepipe_cmd(args, Path("OUT"), contender))])
            + (f"  # code of git {contender.rev}" if contender.rev else ""),
            "aggregate": agg,
            "runs": runs,
            "speedup_median": round(
                results["A"]["aggregate"]["wall_s"]["median"] / agg["wall_s"]["median"], 3
            ),
            "speedup_rounds": [
                round(a["wall_s"] / b["wall_s"], 3) for a, b in zip(a_runs, runs, strict=True)
            ],
            "identical_to_A_all_rounds": all(
                compare(workdir / f"A{i}", workdir / f"{contender.name}{i}")["identical"]
                for i in range(1, args.pairs + 1)
            ),
            "compare": compares,
        }
    for ref in references:
        results["references"][ref.name] = {
            "command": shlex.join(facepipe_cmd(args, Path("OUT"), ref)),
            "run": ref_runs[ref.name],
            "compare": {"A": compare(workdir / f"A{last}", workdir / f"ref-{ref.name}")},
        }

    if not args.no_stage_run:
        first = args.contenders[0]
        print(f"bench: instrumented {first.name} run (MONITOR; not timed)", file=sys.stderr, flush=True)
        monitor = CommandLog()
        stage = run_b(args, workdir / "B-monitor", monitor, contender=first)
        monitor.join()
        results["stage_run"] = {
            "contender": first.name,
            "wall_s": stage["wall_s"],
            "milestones_s": stage["milestones_s"],
            "monitor": monitor.summary(),
            "per_chunk": {str(k): v for k, v in sorted(monitor.chunks.items())},
        }
    if not args.no_sizes:
        print("bench: sizing chunk records with detect_chunk/embed_record", file=sys.stderr, flush=True)
        results["message_sizes"] = message_sizes(args)

    return results
