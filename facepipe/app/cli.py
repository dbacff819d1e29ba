"""``facepipe``: the command line. Flags are generated from :class:`facepipe.settings.Settings`.

We use argparse (standard library, no extra dependency) because the flags are built
from the typed settings model, which already owns names, defaults, types and help.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from facepipe.errors import FacepipeError
from facepipe.settings import GROUPS, Choice, Settings, group_of, load_settings

log = logging.getLogger("facepipe")

# FFmpeg (inside OpenCV) prints its own complaints about bad files to stderr; our
# one-line errors say the same thing in words a user can act on.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")

RUN_EPILOG = """\
examples:
  facepipe run clip.mp4                          # embedded server + local workers, nothing to start
  facepipe run clip.mp4 --frame-step 3 --out out/clip --save-images
  facepipe run /shared/ep1.mp4 --broker redis://queue-host:6379/0   # use running workers

Every flag can also be set as an environment variable FACEPIPE_<FLAG> (e.g.
FACEPIPE_SIM_THRESH=0.3); flags win over the environment.

exit status: 0 done; 1 bad input or setup (message says what to do); 3 finished but
some chunks were lost (their frame ranges are printed); 130 interrupted.
"""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_settings_flags(parser: argparse.ArgumentParser, names: list[str] | None = None) -> None:
    """One flag per settings field: name, help, default and ``--help`` group come from the model
    (:func:`facepipe.settings.setting`); the groups show in :data:`~facepipe.settings.GROUPS` order."""
    fields = [(name, field) for name, field in Settings.model_fields.items() if not names or name in names]
    made = {title: parser.add_argument_group(title) for title in GROUPS}
    for name, field in sorted(fields, key=lambda item: GROUPS.index(group_of(item[1]) or GROUPS[-1])):
        group = made.get(group_of(field) or "", parser)
        default = field.default
        if isinstance(default, tuple):
            default = "x".join(map(str, default))
        # a None default is explained by the description itself ("default: found automatically")
        help_text = field.description if default is None else f"{field.description} (default: {default})"
        if field.annotation is bool:
            group.add_argument(
                _flag(name), dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            # the settings model checks every value (a bad choice is its one-line error, as a bad
            # number is), so choices are shown here, not enforced by argparse
            if isinstance(field.annotation, type) and issubclass(field.annotation, Choice):
                metavar = "{" + ",".join(field.annotation.values()) + "}"
            else:
                metavar = "WxH" if name == "det_input" else name.split("_")[-1].upper()
            group.add_argument(
                _flag(name), dest=name, default=None, metavar=metavar, help=help_text, type=str
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facepipe",
        description="Turn video into a per-person bank of face embeddings and appearance counts.",
    )
    parser.add_argument("--version", action="version", version=f"facepipe {version('facepipe')}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="process a video (embedded default, or running workers with --broker)",
        description="Sample frames, detect, align and embed faces, and cluster them into identities.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO",
        help="video file(s), paths the workers can read (or http(s) URLs); several videos are the "
        "episodes of a season: each gets OUT/<stem>/, and OUT/series/ holds one identity bank for all",
    )
    _add_settings_flags(run)

    status = sub.add_parser("status", help="progress of a run on a broker")
    status.add_argument("run_id", nargs="?", help="run id (default: the newest run)")
    _add_settings_flags(status, ["broker", "redis_host", "redis_port", "redis_prefix"])

    report = sub.add_parser(
        "report",
        help="rebuild a finished run's report (from its output folder, or from Redis by run id)",
        description="RUN_OR_DIR is a run's output folder (report.html is rebuilt from summary.json and "
        "faces.jsonl), or a run id on --broker (summary.json, faces.jsonl, bank.npz and report.html are "
        "rebuilt from Redis into --out, default facepipe-runs/RUN_ID).",
    )
    report.add_argument("target", metavar="RUN_OR_DIR", help="output folder, or run id with --broker")
    _add_settings_flags(report, ["broker", "redis_host", "redis_port", "redis_prefix", "out"])

    evaluate = sub.add_parser(
        "eval",
        help="score a finished run against labels (BCubed and pairwise P/R/F, each person's count error)",
        description="Score OUT_DIR's faces.jsonl against LABELS, a JSON list of {frame, bbox, label} "
        "(faces matched by box overlap; unmatched faces are unknown and excluded), as "
        "bench/labelsets.py writes.",
    )
    evaluate.add_argument("out_dir", help="the run's output folder")
    evaluate.add_argument("labels", help="labels JSON file")

    delete = sub.add_parser("delete", help="remove a run's keys from a broker (only that run's)")
    delete.add_argument("run_id", help="run id (see 'facepipe runs')")
    _add_settings_flags(delete, ["broker", "redis_host", "redis_port", "redis_prefix"])

    runs = sub.add_parser("runs", help="list runs recorded on a broker")
    _add_settings_flags(runs, ["broker", "redis_host", "redis_port", "redis_prefix"])
    return parser


def _settings_from_args(args: argparse.Namespace) -> Settings:
    values = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    return load_settings(**values)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    signal.signal(signal.SIGTERM, _terminate)
    try:
        settings = _settings_from_args(args)
        if args.command == "run":
            from facepipe.app.runner import run_videos

            return run_videos(args.videos, settings)
        if args.command == "status":
            from facepipe.app.admin import show_status

            return show_status(settings, args.run_id)
        if args.command == "report":
            if Path(args.target).is_dir() or not settings.broker_url():
                from facepipe.app.report.build import report_command

                return report_command(args.target)
            from facepipe.app.admin import rebuild_outputs

            return rebuild_outputs(settings, args.target)
        if args.command == "eval":
            from facepipe.app.scores import eval_command

            return eval_command(args.out_dir, args.labels)
        if args.command == "delete":
            from facepipe.app.admin import delete_run

            return delete_run(settings, args.run_id)
        if args.command == "runs":
            from facepipe.app.admin import list_runs_cmd

            return list_runs_cmd(settings)
        parser.error(f"unknown command {args.command}")
    except FacepipeError as exc:
        print(f"facepipe: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facepipe: interrupted; everything this command started was stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if debug:
            raise
        print(
            f"facepipe: internal error: {type(exc).__name__}: {exc} (rerun with --debug "
            f"for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
    return 0


def _terminate(signum: int, _frame: Any) -> None:
    """SIGTERM behaves like Ctrl-C, so cleanup code runs."""
    raise KeyboardInterrupt


def entry() -> None:
    started = time.monotonic()
    code = main()
    log.debug("exit %d after %.2f s", code, time.monotonic() - started)
    sys.exit(code)


if __name__ == "__main__":
    entry()
