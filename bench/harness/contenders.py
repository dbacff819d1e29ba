"""The configurations a bench compares, the code each runs, and one run of each.

A is ``bench/baseline.py`` (the plain loop); a :class:`Contender` is one ``facepipe run``
configuration, ``NAME[@REV]=FLAGS``. Every A and B process runs a copy of ``facepipe/``,
``tasks/`` and ``celeryconfig.py`` taken at start (:func:`snapshot_code`), or a git revision's
(:func:`checkout_rev`), first on ``PYTHONPATH``. :func:`run_a` and :func:`run_b` run one of
each (:func:`harness.procs.launch`) and leave its faces' columns in ``columns.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import BENCH, ROOT
from harness.probes import CommandLog, Milestones
from harness.procs import TreeSampler, launch

DEFAULT_CONTENDER = "--num-det 2 --num-emb 1"


@dataclass
class Contender:
    """One ``facepipe run`` configuration: a name, its flags, and the code it runs.

    ``rev`` (a git revision) runs that commit's facepipe/, tasks/ and celeryconfig.py (from
    ``git archive``) instead of the working tree's snapshot: "today's settings" can be today's
    code with its own defaults.
    """

    name: str
    flags: list[str]
    rev: str | None = None
    code_dir: str | None = None
    merge_off: bool = False
    seed_mode: bool = False

    @classmethod
    def parse(cls, text: str, default_name: str = "B") -> Contender:
        """``NAME[@REV]=FLAGS``, or just ``FLAGS`` (named ``default_name``)."""
        match = re.match(r"^([A-Za-z][\w.-]*)(?:@([\w.~^/-]+))?=(.*)$", text, re.S)
        if not match:
            return cls(default_name, shlex.split(text))
        return cls(match.group(1), shlex.split(match.group(3)), match.group(2))

    def describe(self) -> str:
        rev = f" (code of git {self.rev})" if self.rev else ""
        return f"{self.name}: facepipe run {shlex.join(self.flags) or '(defaults)'}{rev}"


def parse_contenders(args: argparse.Namespace) -> list[Contender]:
    texts = args.contender or [DEFAULT_CONTENDER]
    contenders = [Contender.parse(t, "B" if len(texts) == 1 else f"B{i + 1}") for i, t in enumerate(texts)]
    if len({c.name for c in contenders}) != len(contenders):
        raise SystemExit("bench: contender names must differ (NAME=FLAGS)")
    return contenders


def facepipe_exe(contender: Contender | None = None) -> str:
    """The ``facepipe`` command a contender runs: a git revision's own entry point
    (:func:`checkout_rev`'s ``bin/facepipe``), else this venv's script. The venv's script imports
    the working tree's module layout, so it cannot start a revision whose layout differs."""
    if contender is not None and contender.code_dir:
        launcher = Path(contender.code_dir) / "bin" / "facepipe"
        if launcher.exists():
            return str(launcher)
    exe = Path(sys.executable).with_name("facepipe")
    return str(exe) if exe.exists() else "facepipe"


def facepipe_cwd(contender: Contender | None = None) -> str | None:
    """Where a contender's ``facepipe run`` starts: a git revision's checkout (Celery imports
    ``celeryconfig`` and ``tasks`` from the working folder before ``PYTHONPATH``, and today's
    ``celeryconfig.py`` imports today's layout), else None (the repository root)."""
    return contender.code_dir if contender is not None and contender.rev else None


def facepipe_cmd(args: argparse.Namespace, out: Path, contender: Contender | None = None) -> list[str]:
    cmd = [facepipe_exe(contender), "run", str(args.video)]
    cmd += ["--frame-step", str(args.frame_step), "--out", str(out)]
    cmd += ["--sim-thresh", str(args.sim_thresh), "--refine-limit", str(args.refine_limit)]
    if contender is not None and contender.seed_mode:
        cmd += ["--clustering", "seed"]  # the seed's algorithm exactly, as in A
    elif contender is not None and contender.merge_off:
        cmd += ["--merge-thresh", "0"]  # no post-run merge: the seed's algorithm, as in A
    return cmd + (contender.flags if contender is not None else [])


def code_env(args: argparse.Namespace, contender: Contender | None = None) -> dict[str, str]:
    """The environment of A and B: the code snapshot (or the contender's git revision) first on
    PYTHONPATH."""
    env = {**os.environ}
    code = (contender.code_dir if contender is not None else None) or getattr(args, "code_dir", None)
    if code:
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [env.get("PYTHONPATH")])])
    return env


def contender_env(args: argparse.Namespace, contender: Contender | None = None) -> dict[str, str]:
    env = code_env(args, contender)
    env.pop("FACEPIPE_PROGRESS", None)
    for item in args.contender_env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _git(*argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def snapshot_code(workdir: Path) -> dict[str, Any]:
    """Copy facepipe/, tasks/ and celeryconfig.py so that edits made to the working tree
    while the bench runs cannot mix code versions between runs; record the git state."""
    import shutil

    code = workdir / "code"
    for name in ("facepipe", "tasks"):
        shutil.copytree(ROOT / name, code / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "celeryconfig.py", code / "celeryconfig.py")
    dirty = [line[3:] for line in _git("status", "--porcelain").splitlines()]
    return {
        "dir": str(code),
        "git_head": _git("rev-parse", "HEAD"),
        "uncommitted": [p for p in dirty if p.startswith(("facepipe/", "tasks/", "celeryconfig"))],
    }


def checkout_rev(workdir: Path, rev: str) -> str:
    """facepipe/, tasks/ and celeryconfig.py of git revision ``rev``, unpacked under ``workdir``,
    with ``bin/facepipe``: the revision's own ``facepipe`` entry point (from its pyproject.toml)."""
    import io
    import tarfile

    code = workdir / f"code-{rev.replace('/', '_')}"
    archive = subprocess.run(
        ["git", "archive", rev, "facepipe", "tasks", "celeryconfig.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(code, filter="data")
    entry = re.search(r'^facepipe\s*=\s*"([\w.]+):(\w+)"', _git("show", f"{rev}:pyproject.toml"), re.M)
    if entry is None:
        raise SystemExit(f"bench: git {rev}: no facepipe entry point in pyproject.toml")
    module, function = entry.groups()
    launcher = code / "bin" / "facepipe"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(
        f"#!{sys.executable}\nimport sys\n\nfrom {module} import {function}\n\nsys.exit({function}())\n"
    )
    launcher.chmod(0o755)
    return str(code)


def prepare_code(
    args: argparse.Namespace, workdir: Path, contenders: list[Contender]
) -> dict[str, Any] | None:
    """Snapshot the working tree (and check out revisions); find which contenders can turn the
    post-run merge off (--merge-thresh exists in their code)."""
    code = None
    if not args.no_snapshot:
        code = snapshot_code(workdir)
        args.code_dir = code["dir"]
    for contender in contenders:
        if contender.rev:
            contender.code_dir = checkout_rev(workdir, contender.rev)
        helptext = subprocess.run(
            [facepipe_exe(contender), "run", "--help"],
            capture_output=True,
            text=True,
            env=code_env(args, contender),
            cwd=facepipe_cwd(contender),
        ).stdout
        # --clustering seed where facepipe has it (with the default --clustering tracks,
        # --merge-thresh 0 would leave every face track its own identity), else switch off
        # the post-run merge where facepipe has one.
        contender.seed_mode = "--clustering" in helptext
        contender.merge_off = "--merge-thresh" in helptext
    return code


def video_facts(video: Path) -> tuple[int, str]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    size = f"{int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    cap.release()
    return frames, size


def run_a(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / "baseline.py"), str(args.video), "--frame-step", str(args.frame_step)]
    cmd += ["--sim-thresh", str(args.sim_thresh), "--refine-limit", str(args.refine_limit)]
    cmd += shlex.split(args.baseline_args)
    result = launch(cmd, workdir, "baseline", env=code_env(args))
    out = json.loads((workdir / "stdout.txt").read_text())
    result.update(
        frames_sampled=out["frames_sampled"],
        frames_read=out["frames_read"],
        faces=out["faces"],
        identities=out["identities"],
        counts=out["counts"],
        stage_s=out["timings"],
        stage_cpu_s=out.get("cpu_timings"),
        first_face_s=round(out["first_face_epoch"] - result["launch_epoch"], 2)
        if out["first_face_epoch"]
        else None,
    )
    (workdir / "columns.json").write_text(
        json.dumps(
            {
                "frames": out["face_frames"],
                "identities": out["face_identities"],
                "bboxes": out.get("face_bboxes"),
            }
        )
    )
    return result


def run_b(
    args: argparse.Namespace,
    workdir: Path,
    monitor: CommandLog | None = None,
    contender: Contender | None = None,
) -> dict[str, Any]:
    milestones = Milestones()

    def hook(sampler: TreeSampler) -> None:
        if monitor is not None:
            monitor.attach(sampler)
        milestones(sampler)

    contender = contender or args.contenders[0]
    result = launch(
        facepipe_cmd(args, workdir / "out", contender),
        workdir,
        "cli",
        hook=hook,
        env=contender_env(args, contender),
        cwd=facepipe_cwd(contender),
    )
    summary = json.loads((workdir / "out" / "summary.json").read_text())
    t0 = result["launch_epoch"]
    result.update(
        frames_sampled=summary["frames_sampled"],
        frames_read=summary["frames_read"],
        faces=summary["faces_embedded"],
        identities=summary["identities"],
        counts=summary["counts"],
        failed_chunks=len(summary["failed_chunks"]),
        cli_elapsed_s=summary["elapsed_s"],
        stage_seconds=summary.get("stage_seconds"),
        runtimes=summary.get("runtimes"),
        decode=summary.get("decode"),
        milestones_s={k: round(v - t0, 2) for k, v in sorted(milestones.times.items(), key=lambda kv: kv[1])},
    )
    result["first_face_s"] = result["milestones_s"].get("first_face_applied")
    if "all_chunks_applied" in milestones.times:
        result["teardown_s"] = round(result["wall_s"] - result["milestones_s"]["all_chunks_applied"], 2)
    frames, idents, boxes = [], [], []
    with open(workdir / "out" / "faces.jsonl") as fh:
        for line in fh:
            face = json.loads(line)
            frames.append(face["frame"])
            idents.append(face["identity"])
            boxes.append(face["bbox"])
    (workdir / "columns.json").write_text(
        json.dumps({"frames": frames, "identities": idents, "bboxes": boxes})
    )
    return result
