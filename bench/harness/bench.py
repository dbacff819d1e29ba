"""One bench session, as ``bench/run.py`` starts it: the video, the code, the runs, the results.

:func:`run` takes ``bench/run.py``'s parsed arguments, builds the default video when it is
missing, snapshots the code (:func:`harness.contenders.prepare_code`), runs the rounds
(:func:`harness.rounds.run_rounds`) or, with ``--episode``, the episode runs
(:func:`harness.episode.run_episode`), writes the results file and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import time

import make_video

from harness.contenders import Contender, parse_contenders, prepare_code, video_facts
from harness.episode import episode_report, run_episode
from harness.report import report
from harness.rounds import run_rounds


def run(args: argparse.Namespace) -> int:
    """The bench ``args`` describe (``bench/run.py --help``); 0 when it finished."""
    args.contenders = parse_contenders(args)
    references = [Contender.parse(t, f"R{i + 1}") for i, t in enumerate(args.reference)]

    if args.video == make_video.DEFAULT_PATH and not args.video.exists():
        make_video.build(args.video)
    if not args.video.exists():
        raise SystemExit(f"bench: video not found: {args.video} (build it with bench/make_video.py)")
    frames, size = video_facts(args.video)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = args.workdir / stamp
    code = prepare_code(args, workdir, args.contenders + references)

    if args.episode:
        results = run_episode(args, args.contenders, workdir)
        results["code"] = code
        table = episode_report(results)
    else:
        results = run_rounds(args, references, workdir, stamp, frames, size, code)
        table = report(results)
    results["table_markdown"] = table
    args.results.write_text(json.dumps(results, indent=2))
    print(table)
    print(f"\nresults: {args.results}; run folders: {workdir}")
    return 0
