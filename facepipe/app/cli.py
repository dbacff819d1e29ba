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
from facepipe.settings import CURATION_GROUPS, GROUPS, Choice, Settings, group_of, load_settings

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
  facepipe run /shared/ep1.mp4 --broker rediss://:PW@queue-host:6379/0 --tls-ca-certs ca.crt  # over TLS

With --broker a run outlives this command: it rides out a broker restart (up to
--stall-timeout), and if this command dies, 'facepipe runs' shows the run as orphaned and
'facepipe resume RUN_ID' finishes it. A finished run's faces stay in Redis --keep-hours.

Every flag can also be set as an environment variable FACEPIPE_<FLAG> (e.g.
FACEPIPE_SIM_THRESH=0.3); flags win over the environment.

exit status: 0 done; 1 bad input or setup (message says what to do); 3 finished but
some chunks were lost (their frame ranges are printed); 130 interrupted.
"""


#: the flags of every command that talks to a broker
BROKER_FLAGS = ["broker", "redis_host", "redis_port", "redis_prefix", "tls_ca_certs"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_settings_flags(
    parser: argparse.ArgumentParser, names: list[str] | None = None, skip: tuple[str, ...] = ()
) -> None:
    """One flag per settings field: name, help, default and ``--help`` group come from the model
    (:func:`facepipe.settings.setting`); the groups show in :data:`~facepipe.settings.GROUPS` order.
    ``names``: only those fields; ``skip``: not the fields of those groups."""
    fields = [
        (name, field)
        for name, field in Settings.model_fields.items()
        if (not names or name in names) and group_of(field) not in skip
    ]
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
    _add_settings_flags(run, skip=CURATION_GROUPS)

    status = sub.add_parser("status", help="progress of a run on a broker")
    status.add_argument("run_id", nargs="?", help="run id (default: the newest run)")
    _add_settings_flags(status, BROKER_FLAGS)

    resume = sub.add_parser(
        "resume",
        help="finish a run whose dispatcher is gone: send what is missing, wait, write the outputs",
        description="Finish runs on a broker whose 'facepipe run' died (killed, a laptop closed, the "
        "broker gone longer than --stall-timeout): 'facepipe runs' shows them as orphaned. Sends again "
        "every chunk neither applied nor stored (never sent, or its message lost), follows the run to the "
        "end and writes its outputs where it recorded them (or --out). An episode of a season is resumed "
        "with its whole season, series pass included. A finished run gets its outputs written again.",
    )
    resume.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="run id(s) (see 'facepipe runs')")
    _add_settings_flags(
        resume, [*BROKER_FLAGS, "out", "stall_timeout", "resend_after", "keep_hours", "progress", "debug"]
    )

    report = sub.add_parser(
        "report",
        help="rebuild a finished run's report (from its output folder, or from Redis by run id)",
        description="RUN_OR_DIR is a run's output folder (report.html is rebuilt from summary.json and "
        "faces.jsonl), or a run id on --broker (summary.json, faces.jsonl, bank.npz and report.html are "
        "rebuilt from Redis into --out, default facepipe-runs/RUN_ID).",
    )
    report.add_argument("target", metavar="RUN_OR_DIR", help="output folder, or run id with --broker")
    _add_settings_flags(report, [*BROKER_FLAGS, "out", "keep_hours"])

    evaluate = sub.add_parser(
        "eval",
        help="score a finished run against labels (BCubed and pairwise P/R/F, each person's count error)",
        description="Score OUT_DIR's faces.jsonl against LABELS, a JSON list of {frame, bbox, label} "
        "(faces matched by box overlap; unmatched faces are unknown and excluded), as "
        "bench/labelsets.py writes.",
    )
    evaluate.add_argument("out_dir", help="the run's output folder")
    evaluate.add_argument("labels", help="labels JSON file")

    delete = sub.add_parser(
        "delete",
        help="remove a run's keys from a broker (only that run's; not its output folder or crops)",
    )
    delete.add_argument("run_id", help="run id (see 'facepipe runs')")
    _add_settings_flags(delete, BROKER_FLAGS)

    runs = sub.add_parser(
        "runs",
        help="list runs on a broker: state (running, orphaned, done, expired), chunks, faces, size",
    )
    _add_settings_flags(runs, BROKER_FLAGS)
    _add_curation_commands(sub)
    return parser


EDIT_EPILOG = """\
examples:
  facepipe edit out/ep1                                  # list the edits made so far
  facepipe edit out/ep1 --merge 5 7                      # 7 is 5: one person, id 5
  facepipe edit out/ep1 --rename 5 "Ross Geller"         # name an identity
  facepipe edit out/ep1 --not-a-face 12                  # leave 12 out of every output
  facepipe edit out/ep1 --split 3 --tracks 17 18         # tracks 17 and 18 of 3 are someone else
  facepipe edit season/series --split 4 --episodes ep3   # in a season: 4's ep3 faces are someone else
  facepipe edit out/ep1 --undo 2                         # edit 2 no longer counts
  facepipe edit out/ep1 --apply edits.json               # the edits of a file saved for these outputs

Several edits in one command apply in the order given, all or none. Each is appended to
OUT/edits.json (what, who, when, and the command) and applied to summary.json, faces.jsonl,
identities.csv, bank.npz and report.html; OUT/original/ keeps the run's own outputs. The same
edit twice changes nothing. A later 'facepipe run ... --bank OUT/bank.npz' (or a season's
series/bank.npz) keeps the names, the merges, the splits and the not-a-face marks.
Identity ids, names and tracks are in identities.csv, report.html and faces.jsonl.

exit status: 0 done (or nothing to change); 1 the edit cannot be made (nothing was changed).
"""


def _add_curation_commands(sub: Any) -> None:
    """``edit``, ``name`` and ``find``: a person reviews, corrects and names the identities."""
    from facepipe.app.curate import OrderedEdit

    edit = sub.add_parser(
        "edit",
        help="correct a finished run's (or a season's) identities: merge, rename, not a face, split, undo",
        description="Correct the identities of OUT (a run's --out folder, or a season's OUT/series). "
        "Without an edit, list the edits made so far.",
        epilog=EDIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    edit.add_argument("target", metavar="OUT", help="a run's output folder, or a season's OUT/series")
    edit.add_argument(
        "--merge",
        nargs="+",
        metavar="ID",
        action=OrderedEdit,
        help="KEEP OTHER...: these are one person, id KEEP",
    )
    edit.add_argument(
        "--rename", nargs=2, metavar=("ID", "NAME"), action=OrderedEdit, help="name an identity"
    )
    edit.add_argument(
        "--not-a-face",
        dest="not_a_face",
        nargs="+",
        metavar="ID",
        action=OrderedEdit,
        help="these identities are no face (or no one to keep): left out of every output and future banks",
    )
    edit.add_argument(
        "--split",
        metavar="ID",
        action=OrderedEdit,
        help="the parts given next (--tracks or --episodes) of ID are someone else: a new identity",
    )
    edit.add_argument(
        "--tracks", nargs="+", metavar="T", action=OrderedEdit, help="with --split: face tracks (a run)"
    )
    edit.add_argument(
        "--episodes", nargs="+", metavar="EP", action=OrderedEdit, help="with --split: episodes (a season)"
    )
    edit.add_argument("--undo", nargs="+", type=int, metavar="N", help="edit number(s) that no longer count")
    edit.add_argument(
        "--apply", metavar="EDITS.json", help="apply the edits in this file (made for these outputs)"
    )

    name = sub.add_parser(
        "name",
        help="name identities from reference photos (REFS/<Name>.jpg or REFS/<Name>/*.jpg)",
        description="Embed the reference photos with the run's own models and name each identity of OUT "
        "(a run's folder or a season's OUT/series) whose faces match one person clearly: at least "
        "--match-thresh, and --match-margin ahead of the next name. Ambiguous and unknown identities stay "
        "numbered and are listed. The names are edits (OUT/edits.json): in every output, kept by "
        "later --bank runs, undone with 'facepipe edit OUT --undo N'. Names given by hand are kept.",
    )
    name.add_argument("target", metavar="OUT", help="a run's output folder, or a season's OUT/series")
    name.add_argument(
        "--refs", required=True, metavar="DIR", help="DIR/<Name>.jpg or DIR/<Name>/*.jpg (png too)"
    )
    name.add_argument("--dry-run", action="store_true", help="show what would be named, write nothing")
    _add_settings_flags(name, ["match_thresh", "match_margin", "debug"])

    find = sub.add_parser(
        "find",
        help="where the person in a photo appears in a bank (episodes, times, counts)",
        description="Find the person in PHOTO (its largest face) in a bank: a season's OUT/series/bank.npz "
        "or a run's OUT/bank.npz. Lists the people at or above --match-thresh, best match first, with "
        "their episodes, times on screen and face counts.",
        epilog="exit status: 0 found; 2 nobody matches; 1 bad input",
    )
    find.add_argument("photo", metavar="PHOTO", help="a photo (JPEG, PNG) with the face to look for")
    find.add_argument(
        "--bank", required=True, metavar="BANK", help="OUT/series/bank.npz, or a run's OUT/bank.npz"
    )
    find.add_argument("--top", type=int, default=5, metavar="N", help="show at most N people (default: 5)")
    _add_settings_flags(find, ["match_thresh", "det_model", "rec_model", "backend", "precision", "debug"])


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
        if args.command == "resume":
            from facepipe.app.resume import resume_runs

            return resume_runs(settings, args.run_ids)
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
        if args.command == "edit":
            from facepipe.app.curate import edit_command, request_of

            return edit_command(args.target, request_of(args), argv)
        if args.command == "name":
            from facepipe.app.naming import name_command

            return name_command(
                args.target, args.refs, settings.match_thresh, settings.match_margin, args.dry_run
            )
        if args.command == "find":
            from facepipe.app.naming import find_command

            models = settings.model_dump(
                mode="json", include={"det_model", "rec_model", "backend", "precision"}
            )
            return find_command(args.photo, args.bank, args.top, settings.match_thresh, models)
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
