"""The bank files: a run's ``bank.npz`` and a season's series bank, as plain NumPy arrays.

**The run bank** (``OUT/bank.npz``): a finished run's identities and faces.

One file, written with :func:`numpy.savez_compressed`, holding only numeric and
unicode arrays, so it loads with ``np.load(path, allow_pickle=False)`` in any NumPy
(no pickles, no facepipe needed to read it).

Identities (``N`` of them, row ``i`` is identity ``identity_ids[i]``, in founding order):

====================  ==============  ========================================================
``identity_ids``      int64 (N,)      identity id (``0 .. N-1``), as in ``faces.jsonl``
``centroids``         float32 (N,512) each identity's centroid, unit rows (cosine = dot product)
``counts``            int64 (N,)      faces assigned to the identity
``refine_counts``     int64 (N,)      faces that shaped the centroid (all of them, except for a
                                      seed/online identity: stops at ``--refine-limit``)
``extras``            bool (N,)       fewer than ``--min-faces`` faces: a background person
``first_frame``       int64 (N,)      first video frame the identity appears in (-1: none)
``last_frame``        int64 (N,)      last video frame the identity appears in (-1: none)
====================  ==============  ========================================================

Faces (``F`` of them, in the order the writer applied them, i.e. line order of
``faces.jsonl``):

====================  ==============  ========================================================
``face_embeddings``   float32 (F,512) each face's unit ArcFace embedding
``face_frames``       int64 (F,)      video frame index of the face
``face_identities``   int64 (F,)      identity the face was assigned to
``face_bboxes``       float32 (F,4)   box ``x1, y1, x2, y2`` in frame pixels
``face_tracks``       int64 (F,)      face track (``--clustering tracks``; -1 otherwise)
``face_shots``        int64 (F,)      shot, counted from 0 (``--clustering tracks``; -1 otherwise)
====================  ==============  ========================================================

Run scalars (0-d arrays): ``fps`` (float64, the video's frame rate; ``time = frame / fps``),
``frame_step`` (int64, one frame in this many was sampled) and ``run_id`` (unicode).

Reading it::

    data = np.load("bank.npz", allow_pickle=False)
    sims = data["centroids"] @ query_embedding          # match a new face
    str(data["run_id"]), float(data["fps"])

**The series bank** (``OUT/series/bank.npz``): one identity per person across a season's
episodes (:class:`facepipe.clustering.series.SeriesBank`, its arrays listed there and in the
README, "A season"). :func:`read_series_bank` checks a file before a run relies on it.

Both are written next to their final name and renamed into place
(:func:`facepipe.app.files.save_npz`), so a reader never sees half a bank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facepipe.app.files import save_npz
from facepipe.clustering.final import FinalIdentities
from facepipe.clustering.series import SERIES_KEYS, SeriesBank
from facepipe.errors import FacepipeError
from facepipe.records import DIM, RunParams

BANK_FILE = "bank.npz"

#: Every array a run bank holds (the format above); :func:`read_run_bank` checks for them.
BANK_KEYS = (
    "identity_ids",
    "centroids",
    "counts",
    "refine_counts",
    "extras",
    "first_frame",
    "last_frame",
    "face_embeddings",
    "face_frames",
    "face_identities",
    "face_bboxes",
    "face_tracks",
    "face_shots",
    "fps",
    "frame_step",
    "run_id",
)


def _target(path: Path) -> Path:
    """``path`` itself when it names a ``.npz`` file, else ``path/bank.npz``."""
    path = Path(path)
    return path if path.suffix == ".npz" else path / BANK_FILE


def write_run_bank(path: Path, final: FinalIdentities, params: RunParams, run_id: str) -> Path:
    """Write a run's final identities and faces to ``bank.npz`` and return the file written.

    ``path`` is either the output folder (the file is ``path/bank.npz``) or a file name ending
    in ``.npz``. ``final`` is the run's identities after the final pass
    (:mod:`facepipe.clustering.final`).
    """
    target = _target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    faces = final.faces
    embeddings = final.face_embeddings
    if len(faces) != len(embeddings):
        raise ValueError(f"run {run_id}: {len(faces)} faces but {len(embeddings)} embeddings")

    n = len(final)
    face_frames = np.array([f.frame for f in faces], dtype=np.int64)
    face_identities = np.array([f.identity for f in faces], dtype=np.int64)
    face_bboxes = np.array([f.bbox[:4] for f in faces], dtype=np.float32).reshape(len(faces), 4)

    first_frame = np.full(n, -1, dtype=np.int64)
    last_frame = np.full(n, -1, dtype=np.int64)
    if len(faces):
        lo = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(n, -1, dtype=np.int64)
        np.minimum.at(lo, face_identities, face_frames)
        np.maximum.at(hi, face_identities, face_frames)
        seen = hi >= 0
        first_frame[seen] = lo[seen]
        last_frame[seen] = hi[seen]

    arrays: dict[str, np.ndarray] = {
        "identity_ids": np.arange(n, dtype=np.int64),
        "centroids": np.ascontiguousarray(final.centroids, dtype=np.float32).reshape(n, DIM),
        "counts": np.array(final.counts, dtype=np.int64),
        "refine_counts": np.array(final.refine_counts, dtype=np.int64),
        "extras": np.asarray(final.extras, dtype=bool).reshape(n),
        "first_frame": first_frame,
        "last_frame": last_frame,
        "face_embeddings": np.ascontiguousarray(embeddings, dtype=np.float32).reshape(len(faces), DIM),
        "face_frames": face_frames,
        "face_identities": face_identities,
        "face_bboxes": face_bboxes,
        "face_tracks": np.array([-1 if f.track is None else f.track for f in faces], dtype=np.int64),
        "face_shots": np.array([-1 if f.shot is None else f.shot for f in faces], dtype=np.int64),
        "fps": np.array(params.fps, dtype=np.float64),
        "frame_step": np.array(params.frame_step, dtype=np.int64),
        "run_id": np.array(run_id, dtype=np.str_),
    }
    return save_npz(target, arrays)


def read_run_bank(path: Path | str) -> dict[str, Any]:
    """Read a bank file (no pickles) into a dict of arrays.

    Array entries stay NumPy arrays; the scalars come back as Python values
    (``fps`` float, ``frame_step`` int, ``run_id`` str). ``path`` may be the file or
    the output folder that holds ``bank.npz``.
    """
    with np.load(_target(Path(path)), allow_pickle=False) as data:
        missing = [key for key in BANK_KEYS if key not in data.files]
        if missing:
            raise ValueError(f"{path} is not a facepipe bank: missing {', '.join(missing)}")
        bank: dict[str, Any] = {key: data[key] for key in data.files}
    bank["fps"] = float(bank["fps"])
    bank["frame_step"] = int(bank["frame_step"])
    bank["run_id"] = str(bank["run_id"])
    return bank


def read_series_bank(path: Path) -> SeriesBank:
    """Read and check a series bank; anything else is a one-line :class:`FacepipeError`."""
    path = Path(path)
    if not path.is_file():
        raise FacepipeError(f"bank file not found: {path} (pass the series/bank.npz of an earlier run)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in SERIES_KEYS if key not in data.files]
            if missing:
                what = (
                    "an episode's bank.npz, not a series bank"
                    if "run_id" in data.files
                    else "not a series bank"
                )
                raise FacepipeError(
                    f"{path} is {what}: it lacks {', '.join(missing[:3])} "
                    "(pass the series/bank.npz that 'facepipe run EP1 EP2 ...' wrote)"
                )
            bank = SeriesBank(**{key: data[key] for key in SERIES_KEYS})
    except FacepipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip, npy and pickle refusals all mean "not a bank"
        raise FacepipeError(f"{path} is not a readable .npz bank ({type(exc).__name__}: {exc})") from None
    bank.check(path)
    return bank


def write_series_bank(bank: SeriesBank, path: Path) -> Path:
    """Write a series bank (no pickles)."""
    arrays = {key: getattr(bank, key) for key in SERIES_KEYS}
    arrays["episodes"] = np.asarray(bank.episodes, dtype=np.str_)
    arrays["videos"] = np.asarray(bank.videos, dtype=np.str_)
    return save_npz(path, arrays)
