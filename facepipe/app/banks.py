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

What people decided (``facepipe name``, ``facepipe edit``; :data:`RUN_OPTIONAL_KEYS`, absent from
banks of older versions, whose readers get the defaults):

=======================  ==============  =====================================================
``names``                unicode (N,)    each identity's name ("" unnamed)
``face_anchors``         int64 (F,)      the identity a face had before any merge (a season
                                         matches new episodes against each anchor)
``rejected_embeddings``  float32 (R,512) faces of identities marked not a face
``rejected_groups``      int64 (R,)      which such identity each was
``kept_apart``           int64 (K,2)     pairs of identities a person split apart
``next_id``              int64 ()        the lowest id never used
``model``                unicode ()      the recogniser: file name and sha256 prefix
``video``                unicode ()      the video's path
``frame_count``          int64 ()        the video's frames (for screen-time shares)
=======================  ==============  =====================================================

After edits, ``identity_ids`` keep their numbers (a merged id is gone, a split adds one), so
they may have gaps.

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
from facepipe.clustering.series import OPTIONAL_SERIES_KEYS, SERIES_KEYS, SeriesBank
from facepipe.errors import FacepipeError
from facepipe.inference.files import model_fingerprint, resolve_model
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


#: Arrays a run bank of this version also holds (above); older banks get the defaults.
RUN_OPTIONAL_KEYS = (
    "names",
    "face_anchors",
    "rejected_embeddings",
    "rejected_groups",
    "kept_apart",
    "next_id",
    "model",
    "video",
    "frame_count",
)


def recogniser_fingerprint(rec_model: str | Path | None) -> str:
    """The fingerprint of the recogniser a run with ``--rec-model rec_model`` uses on this host
    ("" when it cannot be found here: then no bank check is possible)."""
    try:
        return model_fingerprint(resolve_model("embedder", rec_model))
    except (FacepipeError, OSError):
        return ""


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
        "names": np.full(n, "", dtype=np.str_),
        "face_anchors": face_identities.copy(),
        "rejected_embeddings": np.zeros((0, DIM), np.float32),
        "rejected_groups": np.zeros(0, np.int64),
        "kept_apart": np.zeros((0, 2), np.int64),
        "next_id": np.array(n, dtype=np.int64),
        "model": np.array(recogniser_fingerprint(params.rec_model), dtype=np.str_),
        "video": np.array(params.video, dtype=np.str_),
        "frame_count": np.array(params.frame_count, dtype=np.int64),
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
    n, f = len(bank["identity_ids"]), len(bank["face_identities"])
    defaults: dict[str, Any] = {
        "names": np.full(n, "", dtype=np.str_),
        "face_anchors": np.asarray(bank["face_identities"], np.int64).copy(),
        "rejected_embeddings": np.zeros((0, DIM), np.float32),
        "rejected_groups": np.zeros(0, np.int64),
        "kept_apart": np.zeros((0, 2), np.int64),
        "model": "",
        "video": "",
        "frame_count": 0,
    }
    for key, value in defaults.items():
        bank.setdefault(key, value)
    bank["fps"] = float(bank["fps"])
    bank["frame_step"] = int(bank["frame_step"])
    bank["run_id"] = str(bank["run_id"])
    bank["model"] = str(bank["model"])
    bank["video"] = str(bank["video"])
    bank["frame_count"] = int(bank["frame_count"])
    tops = [bank["identity_ids"], bank["face_anchors"], bank["rejected_groups"]]
    bank["next_id"] = int(bank.get("next_id", max((int(a.max()) + 1 for a in tops if len(a)), default=0)))
    if bank["face_anchors"].shape != (f,) or bank["names"].shape != (n,):
        raise ValueError(f"{path} is not a facepipe bank: its arrays do not fit together")
    return bank


def read_series_bank(path: Path, expect_model: str | Path | None | bool = False) -> SeriesBank:
    """Read and check a bank for a season: a series bank, or a run's ``bank.npz`` (a season of one
    episode, with its names and edits). Anything else is a one-line :class:`FacepipeError`.

    ``expect_model`` (a ``--rec-model`` value, None for the default one): refuse a bank whose
    embeddings another recogniser made; False: no check.
    """
    path = Path(path)
    if not path.is_file():
        raise FacepipeError(
            f"bank file not found: {path} (pass the series/bank.npz of an earlier season, "
            "or a run's bank.npz)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
        if "run_id" in files and "episodes" not in files:
            bank = series_bank_of_run(read_run_bank(path), path)
        else:
            with np.load(path, allow_pickle=False) as data:
                missing = [key for key in SERIES_KEYS if key not in data.files]
                if missing:
                    raise FacepipeError(
                        f"{path} is not a series bank: it lacks {', '.join(missing[:3])} "
                        "(pass the series/bank.npz that 'facepipe run EP1 EP2 ...' wrote, "
                        "or a run's bank.npz)"
                    )
                arrays: dict[str, Any] = {key: data[key] for key in SERIES_KEYS}
                for key in OPTIONAL_SERIES_KEYS:
                    if key in data.files:
                        arrays[key] = data[key]
            for key in ("next_id",):
                if key in arrays:
                    arrays[key] = int(arrays[key])
            for key in ("model", "series_id"):
                if key in arrays:
                    arrays[key] = str(arrays[key])
            bank = SeriesBank(**arrays)
    except FacepipeError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip, npy and pickle refusals all mean "not a bank"
        raise FacepipeError(f"{path} is not a readable .npz bank ({type(exc).__name__}: {exc})") from None
    bank.check(path)
    if expect_model is not False:
        check_bank_model(bank.model, expect_model, path)  # type: ignore[arg-type]
    return bank


def check_bank_model(bank_model: str, rec_model: str | Path | None, path: Path) -> None:
    """Refuse a bank whose embeddings another recogniser made (a bank that does not say is taken
    on trust: banks of older versions)."""
    if not bank_model:
        return
    here = recogniser_fingerprint(rec_model)
    if here and here != bank_model:
        raise FacepipeError(
            f"{path} was made with another face model ({bank_model}; this one is {here}): its "
            "embeddings cannot be compared (pass that model with --rec-model, or start without it)"
        )


def series_bank_of_run(run: dict[str, Any], path: Path) -> SeriesBank:
    """A run's bank as a season of one episode: its identities (with their names, merges, splits
    and not-a-face marks) are the people, its ids their series ids."""
    ids = np.asarray(run["identity_ids"], np.int64)
    face_ids = np.asarray(run["face_identities"], np.int64)
    frames = np.asarray(run["face_frames"], np.int64)
    video = run["video"]
    episode = Path(video).stem if video else Path(path).resolve().parent.name or run["run_id"]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    embeddings = np.asarray(run["face_embeddings"], np.float32).reshape(len(face_ids), DIM)
    return SeriesBank.of_faces(
        ids,
        episodes=np.array([episode], dtype=np.str_),
        videos=np.array([video], dtype=np.str_),
        fps=np.array([run["fps"]], dtype=np.float64),
        frame_steps=np.array([run["frame_step"]], dtype=np.int64),
        face_embeddings=embeddings,
        face_identities=face_ids,
        face_episodes=np.zeros(len(face_ids), np.int64),
        face_frames=frames,
        face_bboxes=np.asarray(run["face_bboxes"], np.float32).reshape(-1, 4),
        face_episode_identities=face_ids.copy(),
        names=np.asarray(run["names"], dtype=np.str_)[order],
        face_anchors=np.asarray(run["face_anchors"], np.int64),
        face_shots=np.asarray(run["face_shots"], np.int64),
        rejected_embeddings=np.asarray(run["rejected_embeddings"], np.float32).reshape(-1, DIM),
        rejected_groups=np.asarray(run["rejected_groups"], np.int64),
        kept_apart=np.asarray(run["kept_apart"], np.int64).reshape(-1, 2),
        frame_counts=np.array([run["frame_count"]], dtype=np.int64),
        next_id=int(run["next_id"]),
        model=run["model"],
        series_id=run["run_id"],
    )


def write_series_bank(bank: SeriesBank, path: Path) -> Path:
    """Write a series bank (no pickles)."""
    arrays = {key: getattr(bank, key) for key in (*SERIES_KEYS, *OPTIONAL_SERIES_KEYS)}
    for key in ("episodes", "videos", "names", "model", "series_id"):
        arrays[key] = np.asarray(arrays[key], dtype=np.str_)
    arrays["next_id"] = np.array(bank.next_id, dtype=np.int64)
    return save_npz(path, arrays)
