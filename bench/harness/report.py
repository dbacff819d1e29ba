"""Aggregates over a bench's rounds, and its markdown tables (the default mode's)."""

from __future__ import annotations

import statistics
from typing import Any


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def fmt(s: dict[str, float], digits: int = 1) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    agg = {
        "wall_s": spread(walls),
        "sampled_fps": spread([r["frames_sampled"] / r["wall_s"] for r in runs]),
        "faces_per_s": spread([r["faces"] / r["wall_s"] for r in runs]),
        "cpu_s": spread([r["cpu_s"] for r in runs]),
        "cores_used": spread([r["cores_used"] for r in runs]),
        "peak_tree_rss_mb": spread([r["peak_tree_rss_mb"] for r in runs]),
        "peak_tree_pss_mb": spread([r["peak_tree_pss_mb"] for r in runs]),
        "other_cores": spread([r["other_cores"] for r in runs]),
        "cpu_pressure": spread([r["cpu_pressure"] for r in runs]),
        "frames_sampled": runs[0]["frames_sampled"],
        "frames_read": runs[0]["frames_read"],
        "faces": runs[0]["faces"],
        "identities": runs[0]["identities"],
    }
    firsts = [r["first_face_s"] for r in runs if r.get("first_face_s") is not None]
    if firsts:
        agg["first_face_s"] = spread(firsts)
    teardowns = [r["teardown_s"] for r in runs if r.get("teardown_s") is not None]
    if teardowns:
        agg["teardown_s"] = spread(teardowns)
    return agg


def code_line(code: dict[str, Any] | None) -> str:
    if not code:
        return "the working tree as it was during each run"
    changed = ", ".join(code["uncommitted"]) or "none"
    return f"{code['dir']} (copy of git {code['git_head'][:7]} plus uncommitted: {changed})"


def _cell(agg: dict[str, Any], key: str, digits: int = 1) -> str:
    return fmt(agg[key], digits) if key in agg else "-"


def report(results: dict[str, Any]) -> str:
    """Markdown: one column per configuration (A, then the contenders), ratios from the same run."""
    names = ["A", *results["contenders"]]
    aggs = {"A": results["A"]["aggregate"], **{n: c["aggregate"] for n, c in results["contenders"].items()}}
    runs = {"A": results["A"]["runs"], **{n: c["runs"] for n, c in results["contenders"].items()}}
    lines = [
        f"video {results['video']} ({results['video_frames']} frames, {results['video_size']}), "
        f"frame step {results['frame_step']}, {results['pairs']} rounds, {results['cpus']} CPUs, "
        f"load average {results.get('loadavg_at_start', ['?'])[0]} at start",
        f"code: {code_line(results.get('code'))}",
        f"A = `{results['A']['command']}`",
        *[f"{n} = `{c['command']}`" for n, c in results["contenders"].items()],
        "",
        "| metric (median, min–max) | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]

    def row(label: str, fn: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(n) for n in names) + " |")

    row("wall time, s", lambda n: _cell(aggs[n], "wall_s"))
    row(
        "**speed-up vs A** (ratio of medians; per round)",
        lambda n: (
            "1"
            if n == "A"
            else f"**{results['contenders'][n]['speedup_median']:.2f}x** ("
            + ", ".join(f"{r:.2f}" for r in results["contenders"][n]["speedup_rounds"])
            + ")"
        ),
    )
    row("sampled frames/s", lambda n: _cell(aggs[n], "sampled_fps", 2))
    row("CPU time, s (all processes)", lambda n: _cell(aggs[n], "cpu_s"))
    row("cores busy", lambda n: _cell(aggs[n], "cores_used", 2))
    row("peak RSS, sum over tree, MB", lambda n: _cell(aggs[n], "peak_tree_rss_mb", 0))
    row("peak PSS, sum over tree, MB", lambda n: _cell(aggs[n], "peak_tree_pss_mb", 0))
    row("launch to first face, s", lambda n: _cell(aggs[n], "first_face_s", 2))
    row("last chunk to exit, s", lambda n: _cell(aggs[n], "teardown_s", 2))
    row("frames decoded / sampled", lambda n: f"{aggs[n]['frames_read']} / {aggs[n]['frames_sampled']}")
    row("faces / identities", lambda n: f"{aggs[n]['faces']} / {aggs[n]['identities']}")
    row(
        "models",
        lambda n: "ORT default threads" if n == "A" else "; ".join(runs[n][-1].get("runtimes") or []),
    )
    row("noise: other load, cores", lambda n: _cell(aggs[n], "other_cores", 2))
    row("noise: CPU pressure", lambda n: _cell(aggs[n], "cpu_pressure", 2))
    lines += ["", "Faces against A (last round) and against the reference runs (untimed):", ""]
    refs = list(results.get("references", {}))
    header = ["vs A", *[f"vs {r}" for r in refs]]
    lines += ["| run | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for n in results["contenders"]:
        cells = []
        for target in ["A", *refs]:
            cmp = results["contenders"][n]["compare"].get(target)
            cells.append(_compare_cell(cmp))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for r in refs:
        cmp = results["references"][r]["compare"].get("A")
        lines.append(f"| {r} (reference) | {_compare_cell(cmp)} |" + " |" * len(refs))
    lines += ["", "| round | " + " | ".join(f"{n} wall s" for n in names) + " | other load (cores) |"]
    lines.append("|---" * (len(names) + 2) + "|")
    for i in range(results["pairs"]):
        walls = " | ".join(f"{runs[n][i]['wall_s']:.1f}" for n in names)
        noise = " / ".join(f"{runs[n][i]['other_cores']:.2f}" for n in names)
        lines.append(f"| {i + 1} | {walls} | {noise} |")
    lines += ["", "Stage seconds (workers' own timers, summed over chunks; last round):", ""]
    stages = ("decode", "blur", "detect", "align", "embed")
    lines += ["| run | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    base = results["A"]["runs"][-1]["stage_s"]
    lines.append("| A (own timers) | " + " | ".join(f"{base.get(k, 0):.1f}" for k in stages) + " |")
    for n in results["contenders"]:
        st = runs[n][-1].get("stage_seconds") or {}
        lines.append(f"| {n} | " + " | ".join(f"{st.get(k, 0):.1f}" for k in stages) + " |")
    lines += ["", "Milestones of the last round (s from launch):", ""]
    for n in results["contenders"]:
        ms = runs[n][-1]["milestones_s"]
        lines.append(
            f"- {n}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in ms.items())
            + f", exit {runs[n][-1]['wall_s']:.2f}"
        )
    lines += ["", "Per process role, last round (peak RSS MB / CPU s):", ""]
    for n in names:
        roles = runs[n][-1]["roles"]
        lines.append(
            f"- {n}: "
            + "; ".join(
                f"{role} x{r['processes']} {r['peak_rss_mb']:.0f} MB / {r['cpu_s']:.1f} s"
                for role, r in sorted(roles.items(), key=lambda kv: -kv[1]["cpu_s"])
            )
        )
    stage = results.get("stage_run")
    if stage:
        mon = stage["monitor"]
        lines += [
            "",
            f"Instrumented run of {stage['contender']} (MONITOR, wall {stage['wall_s']:.1f} s): writer "
            f"{mon['writer_python_ms_per_chunk']} ms Python per chunk; chunk stored to applied median "
            f"{mon['store_to_apply_ms_median']} ms.",
            "",
            "| task message (from MONITOR) | count | median bytes | max bytes | total MB |",
            "|---|---|---|---|---|",
        ]
        for queue, m in mon["message_bytes"].items():
            lines.append(f"| {queue} | {m['count']} | {m['median']} | {m['max']} | {m['total'] / 1e6:.2f} |")
    sizes = results.get("message_sizes")
    if sizes:
        t = sizes["typical"]
        lines += [
            "",
            f"Typical chunk (median of {len(sizes['samples'])} sampled chunks, detect_chunk/embed_record): "
            f"{t['faces']} faces; record detect->embed {t['detect_to_embed_record_bytes']} B, celery embed "
            f"message ~{t['celery_embed_message_bytes_est']} B, record embed->writer "
            f"{t['embed_to_writer_record_bytes']} B.",
        ]
    return "\n".join(lines)


def _compare_cell(cmp: dict[str, Any] | None) -> str:
    if not cmp:
        return "-"
    if cmp["identical"]:
        return f"identical ({cmp['faces_a']} faces)"
    text = f"{cmp['identity_mismatches']} mismatches in order; {cmp['faces_b']} vs {cmp['faces_a']} faces"
    if "face_agreement" in cmp:
        text += (
            f"; paired {cmp['paired_faces']}, agreement {100 * cmp['face_agreement']:.2f}%, "
            f"BCubed F {cmp['bcubed_f_vs_a']:.4f}, ids {cmp['identities_b']} vs {cmp['identities_a']}"
        )
    return text
