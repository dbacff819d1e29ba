"""Ground-truth label sets for clustering accuracy, built from ../shared/data into /tmp (cached).

    python bench/labelsets.py [--cache DIR] [--force] [--sheets] [--only SET ...]

Each label set is a video plus, for every face the pipeline detects in it, the chunk records
``facepipe run`` would hand its writer and every face's true person (or unknown). The records
come from :func:`facepipe.inference.chunk.detect_chunk` and :func:`facepipe.inference.chunk.embed_record`
run in this process over the chunks a run plans (frame step 3, chunk size 8) with
``--clustering tracks``, so they carry everything every clustering mode decides from: faces
(frame, detector index, box, score, embedding, ``crop_mean``, ``emb_norm``) and one
:class:`~facepipe.records.FrameSignature` per sampled frame. They are computed once and
cached as ``DIR/<set>.records.jsonl`` (one :class:`~facepipe.records.ChunkRecord` per line,
crops dropped), ``DIR/<set>.crops.npz`` (the 112x112 aligned crops, for the proxy sets) and
``DIR/<set>.meta.json`` (rendered videos as ``DIR/<set>.mp4``). Labels are recomputed from
them on every load and also written as ``DIR/<set>.labels.json`` (``[{frame, bbox, label}]``)
to score a real run with ``facepipe eval``. Nothing is written into the repository.
``--sheets`` writes one contact sheet of face crops per label (and unknown) to check by eye.

The sets (1280x720 at 30 fps where rendered; cheap on two cores):

``debate``, ``talk_show``
    the real TV clips ``videos/debate_clip.mp4`` and ``videos/talk_show_montage.mp4``, labelled
    by hand in ``labelled/tv/*.labels.json`` at ``--frame-step 3 --min-face 40``: faces are
    detected at min-face **40** (the other sets use the run default, 60) and take the label of
    the labelled face in the same frame with box IoU >= 0.5
    (:func:`facepipe.clustering.evaluate.match_labels`).
``avengers``, ``poppins``, ``herapheri``, ``ellen``, ``blackjournal``
    film and TV clips labelled by hand face by face at ``--frame-step 3 --min-face 30``
    (issue 18; ``labelled/tv/``, ``data/MANIFEST.md``): detected at min-face **30**, labels as
    above. Every labelled face is matched (220/220 on avengers, 130/130 on poppins).
``<clip>-360``, ``<clip>-270`` (:func:`lowres_sets`)
    low-resolution views of the seven hand-labelled clips: the clip downscaled (INTER_AREA,
    aspect kept) to fit 640x360 / 480x270, written again as mp4v (one more generation of
    compression) and detected at the clip's min-face times the scale, so about the same faces
    are in, each with fewer pixels; labels carry over by IoU >= 0.5 with the labelled boxes
    scaled alike. A clip already inside the box has no such view (11 views in all).
``slideshow``
    the 62 photos of ``labelled/deepface`` (13 people), each letterboxed to 1280x720 and
    shown for 6 frames (2 sampled frames), shuffled with a fixed seed and repaired so that
    no person's photos are adjacent (people recur, never back to back). Truth: the person of
    the photo the frame shows, for frames with exactly one detected face (others unknown).
``photos_tv``
    the same photos twice each: once clean, once degraded as TV footage is (dark with a red
    stage tint, heavy blur, or small: 30 % of the frame at a random place). Same truth rule.
``photos_hard``
    the photos four times each: clean plus three different harsh degradations
    (:data:`HARD`: an eighth of the light, a tenth of the detail, 20 % of the frame, dark and
    blurred, small and dark). One person's faces fall well below 0.4 to each other here.
``hamilton``, ``dance``
    the clips. Truth by hand where a shot makes it certain (:data:`HAND`: hamilton's opening
    profile close-up, and its static audience shot of four people with no reference photo
    who never move), elsewhere by the **reference rule**: a face is person P when its
    cosine to P's reference photo (``refs/``; the clip's own people only) is ``>= REF_MIN``
    (0.40) and beats the clip's next-best reference by ``>= REF_MARGIN`` (0.10); other faces
    are unknown (dance's crowd extras; faces too blurred or turned to be sure). 0.40 is above
    what different people reach in these sets (0.36 at most), so a label is a confident
    one. (On ``call`` the rule agrees with the exact split-screen truth on 176 of 176 faces,
    a weak check: call's reference photos are stills of the clip itself.)
``call``
    two_person_call. Truth: the left or right half of the split screen (exact: 2 people).
``tv``
    a TV-style edit of the three clips at 1280x720: 2-3 s cuts interleaved
    (hamilton, dance, call, ...), a split-screen segment (hamilton | dance, each scaled to
    640x360), a small-faces segment (call, then dance, scaled to 40 % and centred), then
    more cuts so that people recur after them. Every output frame records which source clip,
    frame, scale and offset each region came from (:class:`Tile`); a face is labelled in its
    source's terms by the rules above (call by the half of the *source* frame its box centre
    maps to). The same person has the same label in every set (``call:left``, ...).

**Proxy sets** (``<set>+hard`` for the six video sets and the five new clips;
:func:`load_proxy`): a stand-in for hard sitcom footage, ported from the issue #10 research
(``build_hard.py``). In bursts of 1-4 consecutive sampled frames of one labelled person, about a
quarter of the labelled faces get their aligned crop darkened, blurred, motion-blurred or
half-occluded (:data:`KINDS`), and are re-embedded with the product's
``FaceEmbedder.embed_with_norms``; the face's ``emb_norm`` and ``crop_mean`` come from the
degraded crop. Boxes, frames and signatures stay the clip's own, labels the clean set's. Seeded
per set name (the research's seeds), so the proxy is the same on every machine that detects the
same faces. Cached as ``DIR/<set>.hard.npz``.

**True cuts** (:data:`CLIP_CUTS`, :func:`true_cuts`): the real clips' shot boundaries found by
eye on contact sheets around every peak of an every-frame signature difference (research
``truth/``); for the rendered sets the boundaries of their continuous pieces
(:func:`units_of`) plus the source clips' own cuts mapped inside the pieces.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = Path(os.environ.get("FACEPIPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("FACEPIPE_ACCURACY_CACHE", "/tmp/facepipe-accuracy"))
DETECT_VERSION = 2  # bump to re-detect cached sets when the videos or detection change
PROXY_VERSION = 1  # bump to rebuild the proxy sets when the degradation changes

SIZE = (1280, 720)
FPS = 30.0
STEP = 3
CHUNK_SIZE = 8  # the run default (Settings.chunk_size)
HOLD = 6  # slideshow frames per photo
SEED = 6
REF_MIN = 0.40
REF_MARGIN = 0.10

#: label-set key -> (video file, reference-photo prefix in refs/, people with a reference photo)
CLIPS = {
    "hamilton": ("hamilton_short.mp4", "hamilton", ("lin_manuel_miranda", "alex_lacamoire", "barack_obama")),
    "call": ("two_person_call.mp4", "two_person_call", ("a", "b")),
    "dance": ("dance_scene.mp4", "dance_scene", ("patrick_swayze", "jennifer_grey")),
}
#: the hand-labelled real TV clips: label-set key -> (video file, labels file in labelled/tv/,
#: the --min-face they were labelled at). Every face SCRFD finds at frame step 3 and that
#: min-face is labelled (data/MANIFEST.md).
TV_LABELLED = {
    "debate": ("debate_clip.mp4", "debate_clip.labels.json", 40),
    "talk_show": ("talk_show_montage.mp4", "talk_show_montage.labels.json", 40),
    "avengers": ("avengers.mp4", "avengers.labels.json", 30),
    "poppins": ("poppins.mp4", "poppins.labels.json", 30),
    "herapheri": ("herapheri.mp4", "herapheri.labels.json", 30),
    "ellen": ("ellen_interview.mp4", "ellen_interview.labels.json", 30),
    "blackjournal": ("blackjournal.mp4", "blackjournal.labels.json", 30),
}
#: the first two were labelled at --min-face 40 (kept for the old name)
TV_MIN_FACE = 40
DEFAULT_MIN_FACE = 60
#: Low-resolution views of the hand-labelled clips (issue 18: private TV is 640x360 with wide
#: shots): ``<clip>-360`` / ``<clip>-270`` is the clip downscaled (INTER_AREA, aspect kept) to fit
#: 640x360 / 480x270, written as mp4v (one more generation of compression) and detected again at
#: the clip's min-face times the scale (so that about the same faces are in, each seen with fewer
#: pixels). Labels carry over by IoU >= 0.5 with the labelled boxes scaled alike. A clip already
#: inside the box has no such view.
LOWRES = {"360": (640, 360), "270": (480, 270)}
VIDEO_SETS = ("debate", "talk_show", "hamilton", "call", "dance", "tv")
#: the new hand-labelled clips (issue 18)
NEW_TV = ("avengers", "poppins", "herapheri", "ellen", "blackjournal")
PHOTO_SETS = ("slideshow", "photos_tv", "photos_hard")
SETS = VIDEO_SETS + PHOTO_SETS + NEW_TV
RENDERED = ("slideshow", "photos_tv", "photos_hard", "tv")
#: the proxy (degraded-burst) versions of the video sets: "<set>+hard"
PROXY_SUFFIX = "+hard"

#: Labels set by eye where the reference rule cannot decide, as rules on the *source* clip:
#: (clip, first frame, last frame, box-centre x from, x to, label). Checked on contact sheets
#: (``--sheets``). Frames 212-274 are one static audience shot of four people whose places never
#: change.
#:
#: Hamilton's opening profile close-up (source frames 20-40, after the cut at 20) is **Alex
#: Lacamoire**, not Lin-Manuel Miranda, as this rule said until issue #10's research
#: (/work/research/clustering/REPORT.md, section 1) looked at it: the face has Lacamoire's
#: curly hair and a light-blue collar, and its embeddings have cosine 0.25-0.28 to Lacamoire's
#: reference photo against 0.00-0.08 to Miranda's. Frames 15-19 are still the wide shot before
#: the cut, where the face in x 250-640 is Miranda standing: those stay his. That one label was
#: the whole "hamilton@3 .961, 6/5" and "TV edit .988/.990" gap every option showed before.
HAND = (
    ("hamilton", 15, 19, 250, 640, "hamilton:lin_manuel_miranda"),
    ("hamilton", 20, 40, 250, 640, "hamilton:alex_lacamoire"),
    ("hamilton", 212, 275, 0, 140, "hamilton:audience_left"),
    ("hamilton", 212, 275, 140, 300, "hamilton:audience_centre"),
    ("hamilton", 212, 275, 300, 370, "hamilton:barack_obama"),
    ("hamilton", 212, 275, 370, 640, "hamilton:michelle_obama"),
)

#: Shot boundaries of the real clips, found by eye (research ``truth/``): the first frame of the new
#: shot, or (first, last) of a transition (the debate's flash to white spans 187-194).
CLIP_CUTS: dict[str, list[tuple[int, int]]] = {
    "debate": [(74, 74), (187, 194), (333, 333), (453, 453), (507, 507), (583, 583)],
    "talk_show": [
        (c, c) for c in (44, 51, 74, 117, 165, 215, 264, 307, 370, 416, 449, 491, 539, 589, 637, 685, 733)
    ],
    "hamilton": [(20, 20), (82, 82), (211, 211)],
    "call": [],
    "dance": [(82, 82), (131, 131), (194, 194), (226, 226)],
}

#: The debate's false faces (a barely-lit blob in the dark lower-left corner of Lester Holt's
#: shot, unlabelled): the frames they are detected in. The gate must leave them no identity.
DEBATE_FALSE_FACE_FRAMES = (546, 567, 570)


def lowres_of(name: str) -> tuple[str, float] | None:
    """``avengers-360`` -> (``avengers``, scale); None for any other set."""
    clip, _, tag = base_name(name).rpartition("-")
    if clip not in TV_LABELLED or tag not in LOWRES:
        return None
    w, h = clip_size(clip)
    bw, bh = LOWRES[tag]
    return clip, min(bw / w, bh / h)


@functools.cache
def clip_size(clip: str) -> tuple[int, int]:
    video = TV_LABELLED[clip][0] if clip in TV_LABELLED else CLIPS[clip][0]
    cap = cv2.VideoCapture(str(SHARED / "videos" / video))
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    return size


def lowres_sets() -> tuple[str, ...]:
    """Every low-resolution view that shrinks its clip (scale < 0.99)."""
    out = []
    for tag in LOWRES:
        for clip in TV_LABELLED:
            name = f"{clip}-{tag}"
            low = lowres_of(name)
            if low and low[1] < 0.99:
                out.append(name)
    return tuple(out)


def min_face_of(name: str) -> int:
    low = lowres_of(name)
    if low is not None:
        return max(12, round(TV_LABELLED[low[0]][2] * low[1]))
    base = base_name(name)
    return TV_LABELLED[base][2] if base in TV_LABELLED else DEFAULT_MIN_FACE


def base_name(name: str) -> str:
    """``debate+hard`` -> ``debate``."""
    return name.removesuffix(PROXY_SUFFIX)


@dataclass(frozen=True)
class Tile:
    """A region of an output frame showing source ``source`` frame ``src_frame`` at ``scale``."""

    source: str  # a clip key, or "photo:<file name>"
    src_frame: int
    x0: int
    y0: int
    scale: float
    width: int  # source size
    height: int
    effect: str = ""  # "", "dark" or "blur" (see :func:`apply_effect`)

    def contains(self, x: float, y: float) -> bool:
        return (
            self.x0 <= x < self.x0 + self.width * self.scale
            and self.y0 <= y < self.y0 + self.height * self.scale
        )

    def to_source(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.x0) / self.scale, (y - self.y0) / self.scale


# ---------------------------------------------------------------- models and faces


#: ONNX Runtime threads when (re)building the cache (FACEPIPE_ACCURACY_THREADS; 2 cores here)
THREADS = int(os.environ.get("FACEPIPE_ACCURACY_THREADS", "2"))


def models(threads: int = 2):
    from facepipe.inference.detector import FaceDetector
    from facepipe.inference.embedder import FaceEmbedder
    from facepipe.inference.files import resolve_model

    return FaceDetector(resolve_model("detector"), threads), FaceEmbedder(resolve_model("embedder"), threads)


def run_settings(name: str, step: int = STEP, **changes: Any):
    """The settings of ``facepipe run VIDEO --frame-step STEP [--min-face 40]`` for a set."""
    from facepipe.settings import Settings

    # The sets were labelled at the seed's detector input; --det-input auto finds slightly other
    # faces (bench/speed_accuracy.py measures how), so the sets stay pinned to 640x640.
    values = {
        "frame_step": step,
        "min_face": min_face_of(name),
        "chunk_size": CHUNK_SIZE,
        "det_input": "640x640",
        **changes,
    }
    return Settings(**values)


def detect_video(name: str, video: Path, detector, embedder) -> tuple[list[str], np.ndarray, dict]:
    """Every chunk record a ``--clustering tracks`` run of ``video`` hands its writer (JSON, crops
    dropped), the faces' aligned crops (in record order), and the video's facts."""
    from facepipe.inference.align import decode_crop
    from facepipe.inference.chunk import detect_chunk, embed_record
    from facepipe.media.plan import plan_chunks
    from facepipe.media.probe import probe
    from facepipe.records import RunParams

    settings = run_settings(name, clustering="tracks")
    info = probe(video)
    params = RunParams.build(settings, info)
    lines, crops = [], []
    faces = sampled = 0
    for chunk in plan_chunks(info.frame_count, settings.frame_step, settings.chunk_size):
        record = embed_record(detect_chunk(chunk, params, detector), embedder, keep_crops=True)
        crops.extend(decode_crop(c) for c in record.crops)
        record.crops = []
        record.timings = {}
        lines.append(record.to_json().decode())
        faces += len(record.faces)
        sampled += record.frames_sampled
    meta = {
        "detect_version": DETECT_VERSION,
        "video": str(video),
        "frame_count": info.frame_count,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "step": settings.frame_step,
        "chunk_size": settings.chunk_size,
        "min_face": settings.min_face,
        "faces": faces,
        "frames_sampled": sampled,
    }
    return lines, np.array(crops, dtype=np.uint8).reshape(-1, 112, 112, 3), meta


def reference_embeddings(detector, embedder) -> dict[str, np.ndarray]:
    """``clip:person`` -> unit embedding of the largest face in that person's reference photo."""
    from facepipe.inference.align import align

    refs = {}
    for clip, (_, prefix, people) in CLIPS.items():
        for person in people:
            path = next((SHARED / "refs").glob(f"{prefix}_{person}.*"))
            image = cv2.imread(str(path))
            faces = detector.detect(image, input_size=(640, 640), det_thresh=0.5)
            if not faces:
                raise RuntimeError(f"no face in reference {path}")
            face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
            refs[f"{clip}:{person}"] = embedder.embed([align(image, face)])[0]
    return refs


def reference_label(embedding: np.ndarray, clip: str, refs: dict[str, np.ndarray]) -> tuple[str, float]:
    """The reference rule: (label or '', best cosine) among ``clip``'s own references."""
    names = [name for name in refs if name.startswith(clip + ":")]
    sims = sorted(((float(refs[n] @ embedding), n) for n in names), reverse=True)
    best, name = sims[0]
    second = sims[1][0] if len(sims) > 1 else -1.0
    if best >= REF_MIN and best - second >= REF_MARGIN:
        return name, best
    return "", best


# ---------------------------------------------------------------- building videos


class SourceFrames:
    """Frames of the shared clips and photos by (source, frame), decoding forward, one clip at a time."""

    def __init__(self) -> None:
        self._caps: dict[str, tuple[cv2.VideoCapture, int]] = {}
        self._last: dict[str, tuple[int, np.ndarray]] = {}
        self._photos: dict[str, np.ndarray] = {}

    def get(self, source: str, frame: int) -> np.ndarray:
        if source.startswith("photo:"):
            name = source.split(":", 1)[1]
            if name not in self._photos:
                self._photos = {name: cv2.imread(str(SHARED / "labelled" / "deepface" / name))}
            return self._photos[name]
        last = self._last.get(source)
        if last is not None and last[0] == frame:
            return last[1]
        cap, position = self._caps.get(source, (None, 0))
        if cap is None or frame < position:
            if cap is not None:
                cap.release()
            cap, position = cv2.VideoCapture(str(SHARED / "videos" / CLIPS[source][0])), 0
        image = None
        while position <= frame:
            ok, image = cap.read()
            if not ok:
                raise RuntimeError(f"{source} has no frame {frame}")
            position += 1
        self._caps[source] = (cap, position)
        self._last[source] = (frame, image)
        return image

    def close(self) -> None:
        for cap, _ in self._caps.values():
            cap.release()


@functools.cache
def source_size(source: str) -> tuple[int, int]:
    if source.startswith("photo:"):
        image = cv2.imread(str(SHARED / "labelled" / "deepface" / source.split(":", 1)[1]))
        return image.shape[1], image.shape[0]
    cap = cv2.VideoCapture(str(SHARED / "videos" / CLIPS[source][0]))
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    return size


def clip_length(clip: str) -> int:
    """Frame count of a shared clip (``CLIPS`` or ``TV_LABELLED``) as OpenCV announces it."""
    video = TV_LABELLED[clip][0] if clip in TV_LABELLED else CLIPS[clip][0]
    cap = cv2.VideoCapture(str(SHARED / "videos" / video))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return count


def render(path: Path, plan: list[list[Tile]]) -> Path:
    """Write the planned frames (each: its tiles drawn on black at 1280x720) as mp4v video."""
    frames = SourceFrames()
    partial = path.with_name(path.stem + ".partial.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    try:
        for tiles in plan:
            canvas = np.zeros((SIZE[1], SIZE[0], 3), dtype=np.uint8)
            for t in tiles:
                image = frames.get(t.source, t.src_frame)
                nw, nh = round(t.width * t.scale), round(t.height * t.scale)
                interp = cv2.INTER_AREA if t.scale < 1 else cv2.INTER_LINEAR
                region = cv2.resize(image, (nw, nh), interpolation=interp)
                canvas[t.y0 : t.y0 + nh, t.x0 : t.x0 + nw] = apply_effect(region, t.effect)
            writer.write(canvas)
    finally:
        writer.release()
        frames.close()
    partial.replace(path)
    return path


def render_lowres(path: Path, clip: str, scale: float) -> Path:
    """The clip downscaled by ``scale`` (INTER_AREA), mp4v at the clip's own frame rate."""
    cap = cv2.VideoCapture(str(SHARED / "videos" / TV_LABELLED[clip][0]))
    fps = cap.get(cv2.CAP_PROP_FPS)
    w, h = clip_size(clip)
    size = (round(w * scale), round(h * scale))
    partial = path.with_name(path.stem + ".partial.mp4")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            writer.write(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    finally:
        writer.release()
        cap.release()
    partial.replace(path)
    return path


def apply_effect(image: np.ndarray, effect: str) -> np.ndarray:
    """TV-style degradations: ``dark`` (a third of the light, red stage tint), ``blur`` (detail of a
    sixth of the size, as defocus or motion leaves it), ``dark2``/``blur2`` (an eighth of the
    light / a tenth of the detail); ``a+b`` applies both; anything else returns ``image``."""
    if "+" in effect:
        for part in effect.split("+"):
            image = apply_effect(image, part)
        return image
    if effect == "dark2":
        return np.clip(image.astype(np.float32) * (0.12, 0.12, 0.25), 0, 255).astype(np.uint8)
    if effect == "blur2":
        h, w = image.shape[:2]
        low = cv2.resize(image, (max(1, w // 10), max(1, h // 10)), interpolation=cv2.INTER_AREA)
        return cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    if effect == "dark":
        return np.clip(image.astype(np.float32) * (0.3, 0.3, 0.55), 0, 255).astype(np.uint8)
    if effect == "blur":
        h, w = image.shape[:2]
        low = cv2.resize(image, (max(1, w // 6), max(1, h // 6)), interpolation=cv2.INTER_AREA)
        return cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    return image


def fit(width: int, height: int, box: tuple[int, int, int, int]) -> tuple[float, int, int]:
    """(scale, x0, y0) that letterboxes a ``width`` x ``height`` source into ``box`` = (x, y, w, h)."""
    bx, by, bw, bh = box
    scale = min(bw / width, bh / height)
    nw, nh = round(width * scale), round(height * scale)
    return scale, bx + (bw - nw) // 2, by + (bh - nh) // 2


def spread(items: list[tuple], seed: int = SEED) -> list[tuple]:
    """``items`` (person first) shuffled with a fixed seed, then repaired so no two adjacent
    items show the same person: people recur, never back to back."""
    items = sorted(items)
    rng = random.Random(seed)
    rng.shuffle(items)
    for _ in range(10000):
        clash = next((k for k in range(1, len(items)) if items[k][0] == items[k - 1][0]), None)
        if clash is None:
            return items
        swap = rng.randrange(len(items))
        items[clash], items[swap] = items[swap], items[clash]
    raise RuntimeError("could not separate same-person photos")


def _photos() -> list[tuple[str, str]]:
    labels = json.loads((SHARED / "labelled" / "deepface" / "labels.json").read_text())
    return [(person, name) for person, names in labels.items() for name in names]


def slideshow_plan() -> list[list[Tile]]:
    plan = []
    for _, name in spread(_photos()):
        w, h = source_size(f"photo:{name}")
        scale, x0, y0 = fit(w, h, (0, 0, *SIZE))
        plan.extend([[Tile(f"photo:{name}", 0, x0, y0, scale, w, h)]] * HOLD)
    return plan


def photos_tv_plan() -> list[list[Tile]]:
    """Every photo twice: once clean, once degraded the way TV footage is (dark, blurred or small)."""
    rng = random.Random(SEED + 1)
    showings = []
    for person, name in sorted(_photos()):
        showings.append((person, name, "clean"))
        showings.append((person, name, rng.choice(("dark", "blur", "small"))))
    plan = []
    for _, name, how in spread(showings):
        w, h = source_size(f"photo:{name}")
        if how == "small":  # 30 % of the frame, somewhere in it
            bw, bh = 384, 216
            box = (rng.randrange(SIZE[0] - bw), rng.randrange(SIZE[1] - bh), bw, bh)
        else:
            box = (0, 0, *SIZE)
        scale, x0, y0 = fit(w, h, box)
        effect = how if how in ("dark", "blur") else ""
        plan.extend([[Tile(f"photo:{name}", 0, x0, y0, scale, w, h, effect)]] * HOLD)
    return plan


#: photos_hard's degradations: (effect, size of the box the photo is fitted into)
HARD = {
    "dark2": (0, 0),
    "blur2": (0, 0),
    "small20": (256, 144),
    "dark+blur": (0, 0),
    "small30+dark": (384, 216),
}


def photos_hard_plan() -> list[list[Tile]]:
    """Every photo four times: clean, and three different harsh degradations (:data:`HARD`)."""
    rng = random.Random(SEED + 2)
    showings = []
    for person, name in sorted(_photos()):
        showings.append((person, name, "clean"))
        showings.extend((person, name, how) for how in rng.sample(sorted(HARD), 3))
    plan = []
    for _, name, how in spread(showings):
        w, h = source_size(f"photo:{name}")
        bw, bh = HARD.get(how, (0, 0))
        box = (rng.randrange(SIZE[0] - bw), rng.randrange(SIZE[1] - bh), bw, bh) if bw else (0, 0, *SIZE)
        scale, x0, y0 = fit(w, h, box)
        effect = "+".join(p for p in how.split("+") if p in ("dark", "blur", "dark2", "blur2"))
        plan.extend([[Tile(f"photo:{name}", 0, x0, y0, scale, w, h, effect)]] * HOLD)
    return plan


def tv_plan() -> list[list[Tile]]:
    sizes = {clip: source_size(clip) for clip in CLIPS}
    lengths = {clip: clip_length(clip) for clip in CLIPS}
    plan: list[list[Tile]] = []

    def tile(clip: str, frame: int, box: tuple[int, int, int, int]) -> Tile:
        scale, x0, y0 = fit(*sizes[clip], box)
        return Tile(clip, frame, x0, y0, scale, *sizes[clip])

    def shot(count: int, *parts: tuple[str, int, tuple[int, int, int, int]]) -> None:
        """``count`` frames of each (clip, first frame, box) part, letterboxed into its box."""
        for k in range(count):
            if any(start + k >= lengths[clip] for clip, start, _ in parts):
                return
            plan.append([tile(clip, start + k, box) for clip, start, box in parts])

    full = (0, 0, *SIZE)
    left, right = (0, 0, 640, 720), (640, 0, 640, 720)
    small = ((SIZE[0] - 512) // 2, (SIZE[1] - 288) // 2, 512, 288)  # 40 %
    # 2-3 s cuts, interleaved
    shot(75, ("hamilton", 0, full))
    shot(90, ("dance", 0, full))
    shot(75, ("call", 0, full))
    shot(75, ("hamilton", 75, full))
    shot(75, ("dance", 90, full))
    # split screen: hamilton | dance, each scaled to 640x360
    shot(75, ("hamilton", 150, left), ("dance", 165, right))
    shot(75, ("call", 75, full))
    # small faces: 40 % of 1280x720, centred
    shot(60, ("call", 150, small))
    shot(60, ("dance", 240, small))
    # more cuts, so everyone recurs after the split and the small segments
    shot(50, ("hamilton", 225, full))
    shot(54, ("call", 210, full))
    shot(60, ("dance", 90, full))
    shot(50, ("hamilton", 100, full))
    return plan


def clip_plan(clip: str) -> list[list[Tile]]:
    w, h = source_size(clip)
    return [[Tile(clip, k, 0, 0, 1.0, w, h)] for k in range(clip_length(clip) + 8)]


def units_of(plan: list[list[Tile]]) -> list[tuple[int, int]]:
    """The plan's continuous pieces as ``(first frame, stop)``: one photo showing, or one run of
    consecutive source frames in one layout. Reordering whole pieces makes another valid edit."""
    units: list[tuple[int, int]] = []
    start = 0
    for k in range(1, len(plan) + 1):
        if k < len(plan) and _continues(plan[k - 1], plan[k]):
            continue
        units.append((start, k))
        start = k
    return units


def _continues(before: list[Tile], after: list[Tile]) -> bool:
    if len(before) != len(after):
        return False
    for a, b in zip(before, after, strict=True):
        if a.source.startswith("photo:"):
            if a != b:
                return False
        elif (a.source, a.x0, a.y0, a.scale, a.src_frame + 1) != (b.source, b.x0, b.y0, b.scale, b.src_frame):
            return False
    return True


@functools.cache
def plan_for(name: str) -> list[list[Tile]] | None:
    """The set's frames as tiles of source frames (None for the hand-labelled TV clips); cached,
    do not change it."""
    name = base_name(name)
    if name in TV_LABELLED or lowres_of(name):
        return None
    if name == "slideshow":
        return slideshow_plan()
    if name == "photos_tv":
        return photos_tv_plan()
    if name == "photos_hard":
        return photos_hard_plan()
    if name == "tv":
        return tv_plan()
    return clip_plan(name)


def units_for(name: str, frame_count: int) -> list[tuple[int, int]]:
    """The set's continuous pieces (:func:`units_of`); a real clip is one piece."""
    plan = plan_for(name)
    return [(0, frame_count)] if plan is None else units_of(plan)


def true_cuts(name: str) -> list[tuple[int, int]]:
    """Shot boundaries as ``(first, last)`` frame intervals (a hard cut: first == last, the first
    frame of the new shot): :data:`CLIP_CUTS` for a real clip; for a rendered set the boundaries of
    its pieces plus the source clips' own cuts where a piece crosses one."""
    name = base_name(name)
    plan = plan_for(name)
    low = lowres_of(name)
    if low is not None:
        name = low[0]
    if plan is None or name in CLIPS:
        return list(CLIP_CUTS.get(name, []))
    units = units_of(plan)
    cuts = [(start, start) for start, _ in units[1:]]
    for start, stop in units:
        for k in range(start + 1, stop):
            for before, after in zip(plan[k - 1], plan[k], strict=False):
                for first, last in CLIP_CUTS.get(after.source, ()):
                    if (
                        before.src_frame < first <= after.src_frame
                        or before.src_frame < last <= after.src_frame
                    ):
                        cuts.append((k, k))
    return sorted(set(cuts))


def video_for(name: str, cache: Path) -> Path:
    name = base_name(name)
    if name in RENDERED or lowres_of(name):
        return cache / f"{name}.mp4"
    if name in TV_LABELLED:
        return SHARED / "videos" / TV_LABELLED[name][0]
    return SHARED / "videos" / CLIPS[name][0]


# ---------------------------------------------------------------- labelling


def label_faces(
    faces: dict[str, np.ndarray], plan: list[list[Tile]], refs: dict[str, np.ndarray]
) -> tuple[list[str], list[str], list[str]]:
    """(label or '', rule that decided it, source) for every face, by where its box centre came from."""
    people = json.loads((SHARED / "labelled" / "deepface" / "labels.json").read_text())
    person_of = {name: person for person, names in people.items() for name in names}
    per_frame = np.bincount(faces["frames"]) if len(faces["frames"]) else np.zeros(0, dtype=int)
    labels, rules, sources = [], [], []
    for frame, box, emb in zip(faces["frames"], faces["bboxes"], faces["embeddings"], strict=True):
        cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
        tile = next((t for t in plan[int(frame)] if t.contains(cx, cy)), None)
        sources.append(tile.source if tile else "")
        if tile is None:
            labels.append("")
            rules.append("outside")
        elif tile.source.startswith("photo:"):
            one = per_frame[int(frame)] == 1
            name = tile.source.split(":", 1)[1]
            labels.append("deepface:" + person_of[name].lower().replace(" ", "_") if one else "")
            rules.append("photo" if one else "photo-multi")
        elif tile.source == "call":
            sx, _ = tile.to_source(cx, cy)
            labels.append("call:left" if sx < tile.width / 2 else "call:right")
            rules.append("half")
        else:
            sx, _ = tile.to_source(cx, cy)
            hand = next(
                (
                    h[5]
                    for h in HAND
                    if h[0] == tile.source and h[1] <= tile.src_frame <= h[2] and h[3] <= sx < h[4]
                ),
                None,
            )
            label = hand or reference_label(emb, tile.source, refs)[0]
            labels.append(label)
            rules.append("hand" if hand else "ref" if label else "ref-unsure")
    return labels, rules, sources


def tv_labels(faces: dict[str, np.ndarray], name: str) -> list[str]:
    """A hand-labelled TV clip's labels: the labelled face in the same frame with box IoU >= 0.5."""
    from facepipe.clustering.evaluate import match_labels

    low = lowres_of(name)
    clip, scale = low if low else (base_name(name), 1.0)
    labelled = json.loads((SHARED / "labelled" / "tv" / TV_LABELLED[clip][1]).read_text())
    if scale != 1.0:
        labelled = [{**x, "bbox": [v * scale for v in x["bbox"]]} for x in labelled]
    items = [
        {"frame": int(f), "bbox": [float(v) for v in b]}
        for f, b in zip(faces["frames"], faces["bboxes"], strict=True)
    ]
    return [str(x or "") for x in match_labels(items, labelled)]


# ---------------------------------------------------------------- the cache
#
# Detections are the slow part, so they are cached apart from the labels:
# ``<set>.records.jsonl``, ``<set>.crops.npz``, ``<set>.meta.json`` (and the rendered video)
# stay until DETECT_VERSION changes, while the labels are recomputed from them on every load
# (milliseconds), so a labelling rule can change without re-running the models.


def _paths(name: str, cache: Path) -> tuple[Path, Path, Path]:
    return cache / f"{name}.records.jsonl", cache / f"{name}.crops.npz", cache / f"{name}.meta.json"


def load_meta(name: str, cache: Path) -> dict[str, Any] | None:
    records, crops, meta = _paths(name, cache)
    if not (records.is_file() and crops.is_file() and meta.is_file()):
        return None
    data = json.loads(meta.read_text())
    return data if data.get("detect_version") == DETECT_VERSION else None


def load_records(name: str, cache: Path = CACHE) -> list:
    """The cached chunk records of a set, as a ``--clustering tracks`` run at frame step 3 made them."""
    from facepipe.records import ChunkRecord

    lines = _paths(name, cache)[0].read_text().splitlines()
    return [ChunkRecord.model_validate_json(line) for line in lines if line.strip()]


def load_crops(name: str, cache: Path = CACHE) -> np.ndarray:
    with np.load(_paths(name, cache)[1], allow_pickle=False) as data:
        return data["crops"]


def load_faces(name: str, cache: Path) -> dict[str, Any] | None:
    """The cached faces of a set, flattened in writer order (frame, then detector index), and its
    sampled frames' signatures (base64, as the records carry them); None when not cached."""
    from facepipe.records import DIM

    meta = load_meta(name, cache)
    if meta is None:
        return None
    records = load_records(name, cache)
    faces = [face for record in records for face in record.faces]
    signatures = [sig for record in records for sig in record.signatures]
    matrices = [record.embedding_matrix() for record in records]
    return {
        "frames": np.array([f.frame for f in faces], dtype=np.int64),
        "index": np.array([f.index for f in faces], dtype=np.int64),
        # float64: exactly the records' numbers, so a record rebuilt from these is the same
        "bboxes": np.array([f.bbox for f in faces], dtype=np.float64).reshape(-1, 4),
        "det_scores": np.array([f.det_score for f in faces], dtype=np.float64),
        "aligned": np.array([f.aligned for f in faces], dtype=bool),
        "crop_mean": np.array([f.crop_mean for f in faces], dtype=np.float64),
        "emb_norm": np.array([f.emb_norm for f in faces], dtype=np.float64),
        "embeddings": np.concatenate(matrices).astype(np.float32)
        if faces
        else np.zeros((0, DIM), np.float32),
        "sig_frames": np.array([s.frame for s in signatures], dtype=np.int64),
        "sig_hist": np.array([s.hist for s in signatures], dtype=object),
        "sig_thumb": np.array([s.thumb for s in signatures], dtype=object),
        "meta": meta,
    }


def detect_set(name: str, cache: Path, detector, embedder) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    video = video_for(name, cache)
    if name in RENDERED:
        render(video, plan_for(name))
    elif lowres_of(name):
        render_lowres(video, *lowres_of(name))
    lines, crops, meta = detect_video(name, video, detector, embedder)
    meta["seconds"] = round(time.perf_counter() - started, 1)
    records, crops_path, meta_path = _paths(name, cache)
    records.write_text("\n".join(lines) + "\n")
    np.savez_compressed(crops_path, crops=crops)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(
        f"labelsets: {name}: {meta['faces']} faces in {meta['frames_sampled']} sampled frames "
        f"({meta['seconds']:.0f} s)",
        file=sys.stderr,
    )


def load_refs(cache: Path, detector=None, embedder=None) -> dict[str, np.ndarray]:
    path = cache / "refs.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return {str(k): data["vectors"][i] for i, k in enumerate(data["names"])}
    if detector is None:
        detector, embedder = models()
    refs = reference_embeddings(detector, embedder)
    names = sorted(refs)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, names=np.array(names, dtype=np.str_), vectors=np.array([refs[n] for n in names]))
    return refs


def load_set(name: str, cache: Path = CACHE) -> dict[str, Any] | None:
    """A label set: the cached faces plus ``labels`` ('' = unknown), ``rules``, ``sources``, and
    what a view of it needs: ``frame_count``, ``units`` (its pieces), ``cuts`` (true cuts)."""
    faces = load_faces(name, cache)
    if faces is None:
        return None
    meta = faces.pop("meta")
    refs = load_refs(cache)
    plan = plan_for(name)
    if plan is None:
        labels = tv_labels(faces, name)
        rules = ["hand-tv" if x else "unlabelled" for x in labels]
        sources = [name] * len(labels)
    else:
        labels, rules, sources = label_faces(faces, plan, refs)
    names = sorted(refs)
    data = {
        **faces,
        "name": name,
        "labels": np.array(labels, dtype=np.str_),
        "rules": np.array(rules, dtype=np.str_),
        "sources": np.array(sources, dtype=np.str_),
        "degraded": np.zeros(len(labels), dtype=np.int64),
        "ref_names": np.array(names, dtype=np.str_),
        "ref_sims": faces["embeddings"] @ np.array([refs[n] for n in names], dtype=np.float32).T,
        "video": str(video_for(name, cache)),
        "step": STEP,
        "min_face": meta["min_face"],
        "fps": meta["fps"],
        "width": meta["width"],
        "height": meta["height"],
        "frame_count": meta["frame_count"],
        "units": units_for(name, meta["frame_count"]),
        "cuts": true_cuts(name),
    }
    (cache / f"{name}.labels.json").write_text(
        json.dumps(
            [
                {"frame": int(f), "bbox": [round(float(v), 2) for v in b], "label": lab}
                for f, b, lab in zip(faces["frames"], faces["bboxes"], labels, strict=True)
            ]
        )
    )
    return data


# ---------------------------------------------------------------- the proxy sets
#
# Ported from the issue #10 research's build_hard.py (same kinds, probabilities and seeds).

#: the degradations of the proxy's bursts (1-based kind numbers in ``degraded``)
KINDS = ("dark", "blur", "motion", "occlude", "dark+motion")
#: probability that a labelled face starts a burst
START_P = 0.12


def degrade(crop: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A 112x112 aligned crop as ``kind`` leaves it: ``dark`` (an eighth to a fifth of the light,
    plus sensor noise), ``blur`` (detail of a seventh to a tenth of the size), ``motion`` (a 9-17 px
    linear motion blur at a random angle), ``occlude`` (40-55 % of the crop from one side a flat dark
    region: a shoulder, hair, a half-turned face); ``a+b`` applies both."""
    img = crop.astype(np.float32)
    for part in kind.split("+"):
        if part == "dark":
            img = img * rng.uniform(0.12, 0.2) + rng.normal(0, 2.0, img.shape)
        elif part == "blur":
            f = int(rng.integers(7, 11))
            small = cv2.resize(img, (112 // f, 112 // f), interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (112, 112), interpolation=cv2.INTER_LINEAR)
        elif part == "motion":
            length = int(rng.integers(9, 18))
            k = np.zeros((length, length), np.float32)
            k[length // 2, :] = 1.0 / length
            centre = (length / 2 - 0.5, length / 2 - 0.5)
            rot = cv2.getRotationMatrix2D(centre, float(rng.uniform(0, 180)), 1.0)
            k = cv2.warpAffine(k, rot, (length, length))
            img = cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
        elif part == "occlude":
            w = int(112 * rng.uniform(0.40, 0.55))
            shade = np.array(rng.uniform(15, 45, 3), np.float32)
            if rng.random() < 0.5:
                img[:, :w] = shade
            else:
                img[:, 112 - w :] = shade
    return np.clip(img, 0, 255).astype(np.uint8)


def plan_bursts(frames: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Kind (1..len(KINDS)) per face, 0 = clean: bursts over consecutive sampled frames of one
    labelled person (a burst continues on that person's next face within 2 sampled frames)."""
    unique = np.unique(frames)
    step = int(np.min(np.diff(unique))) if len(unique) > 1 else STEP
    out = np.zeros(len(frames), dtype=np.int64)
    active: dict[str, tuple[int, int, int]] = {}  # label -> (kind, remaining, last frame)
    for i in range(len(frames)):
        label = labels[i]
        if not label:
            continue
        state = active.get(label)
        if state and state[1] > 0 and frames[i] - state[2] <= 2 * step and frames[i] != state[2]:
            out[i] = state[0]
            active[label] = (state[0], state[1] - 1, int(frames[i]))
            continue
        if rng.random() < START_P:
            kind = int(rng.integers(1, len(KINDS) + 1))
            out[i] = kind
            active[label] = (kind, int(rng.integers(0, 4)), int(frames[i]))
    return out


def _proxy_path(name: str, cache: Path) -> Path:
    return cache / f"{name}.hard.npz"


def build_proxy(name: str, cache: Path, embedder) -> None:
    """Degrade the bursts' crops of set ``name`` and re-embed them (``DIR/<set>.hard.npz``)."""
    started = time.perf_counter()
    data = load_set(name, cache)
    rng = np.random.default_rng([ord(c) for c in name])  # seeded by the set's name, as the research
    kinds = plan_bursts(data["frames"], data["labels"], rng)
    crops = load_crops(name, cache)
    idx = np.flatnonzero(kinds)
    new = [degrade(crops[i], KINDS[kinds[i] - 1], rng) for i in idx]
    matrix, norms = embedder.embed_with_norms(new)
    means = [round(float(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY).mean()), 3) for c in new]
    np.savez_compressed(
        _proxy_path(name, cache),
        proxy_version=np.array(PROXY_VERSION),
        detect_version=np.array(DETECT_VERSION),
        degraded=kinds,
        idx=idx,
        embeddings=np.asarray(matrix, np.float32).reshape(len(idx), -1),
        emb_norm=np.round(np.asarray(norms, np.float64), 4),
        crop_mean=np.array(means, dtype=np.float64),
    )
    labelled = int((data["labels"] != "").sum())
    print(
        f"labelsets: {name}{PROXY_SUFFIX}: {len(idx)} of {labelled} labelled faces degraded "
        f"({', '.join(f'{k} {int((kinds == n + 1).sum())}' for n, k in enumerate(KINDS))}; "
        f"{time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )


def _proxy_cached(name: str, cache: Path) -> bool:
    path = _proxy_path(name, cache)
    if not path.is_file():
        return False
    with np.load(path, allow_pickle=False) as data:
        return int(data["proxy_version"]) == PROXY_VERSION and int(data["detect_version"]) == DETECT_VERSION


def load_proxy(name: str, cache: Path = CACHE, base: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The proxy version ``<set>+hard`` of video set ``name``: its faces with the bursts' embeddings,
    ``emb_norm`` and ``crop_mean`` replaced by the degraded crops' (``degraded`` > 0 marks them)."""
    if not _proxy_cached(name, cache):
        return None
    base = base if base is not None else load_set(name, cache)
    with np.load(_proxy_path(name, cache), allow_pickle=False) as hard:
        hard = {k: hard[k] for k in hard.files}
    if len(hard["degraded"]) != len(base["frames"]):
        raise RuntimeError(f"{name}{PROXY_SUFFIX} does not match the cached faces: rebuild with --force")
    out = dict(base)
    idx = hard["idx"]
    for key in ("embeddings", "emb_norm", "crop_mean"):
        out[key] = base[key].copy()
        out[key][idx] = hard[key]
    out["degraded"] = hard["degraded"]
    out["name"] = name + PROXY_SUFFIX
    return out


def ensure_sets(
    cache: Path = CACHE, force: bool = False, names=SETS, proxies=VIDEO_SETS
) -> dict[str, dict[str, Any]]:
    """Every label set (and the proxy ``<set>+hard`` of each of ``proxies``), detections from the
    cache where they are there (models load only if not)."""
    missing = [n for n in names if force or load_meta(n, cache) is None]
    proxies = [n for n in proxies if n in names]
    if (
        missing
        or not (cache / "refs.npz").is_file()
        or any(force or n in missing or not _proxy_cached(n, cache) for n in proxies)
    ):
        if not (SHARED / "videos").is_dir():
            sys.exit(f"labelsets: shared data not found at {SHARED} (set FACEPIPE_SHARED_DATA)")
        detector, embedder = models(THREADS)
        if force and (cache / "refs.npz").is_file():
            (cache / "refs.npz").unlink()
        load_refs(cache, detector, embedder)
        for name in missing:
            detect_set(name, cache, detector, embedder)
        for name in proxies:
            if force or name in missing or not _proxy_cached(name, cache):
                build_proxy(name, cache, embedder)
    sets = {name: load_set(name, cache) for name in names}
    for name in proxies:
        sets[name + PROXY_SUFFIX] = load_proxy(name, cache, sets[name])
    return sets


# ---------------------------------------------------------------- checking labels by eye


def contact_sheets(data: dict[str, Any], folder: Path, per_row: int = 12, side: int = 80) -> list[Path]:
    """One PNG per label (and one for unknown): the face crops, to check the labels by eye."""
    folder.mkdir(parents=True, exist_ok=True)
    video = str(data["video"])
    wanted: dict[int, list[int]] = {}
    for i, frame in enumerate(data["frames"]):
        wanted.setdefault(int(frame), []).append(i)
    crops: dict[int, np.ndarray] = {}
    cap = cv2.VideoCapture(video)
    index = 0
    last = max(wanted) if wanted else -1
    while index <= last:
        ok = cap.grab()
        if not ok:
            break
        if index in wanted:
            _, frame = cap.retrieve()
            for i in wanted[index]:
                x1, y1, x2, y2 = (int(round(v)) for v in data["bboxes"][i])
                crop = frame[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)]
                crops[i] = (
                    cv2.resize(crop, (side, side)) if crop.size else np.zeros((side, side, 3), np.uint8)
                )
        index += 1
    cap.release()
    paths = []
    for label in sorted(set(data["labels"].tolist())):
        members = [i for i in range(len(data["labels"])) if data["labels"][i] == label]
        tiles = [crops[i] for i in members if i in crops]
        while len(tiles) % per_row:
            tiles.append(np.zeros((side, side, 3), np.uint8))
        rows = [np.hstack(tiles[k : k + per_row]) for k in range(0, len(tiles), per_row)]
        path = folder / f"{data['name']}_{(label or 'unknown').replace(':', '_')}.png"
        cv2.imwrite(str(path), np.vstack(rows))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"cache folder (default {CACHE})")
    parser.add_argument("--force", action="store_true", help="rebuild every set")
    parser.add_argument(
        "--sheets", action="store_true", help="write contact sheets of each label to CACHE/sheets"
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help="sets to build (default: all, and the low-resolution views)"
    )
    args = parser.parse_args(argv)
    sets = ensure_sets(
        args.cache, args.force, args.only or (*SETS, *lowres_sets()), proxies=(*VIDEO_SETS, *NEW_TV)
    )
    for name, data in sets.items():
        labels = data["labels"].tolist()
        if name.endswith(PROXY_SUFFIX):
            degraded = int((data["degraded"] > 0).sum())
            print(f"{name}: {degraded} of {sum(map(bool, labels))} labelled faces degraded")
            continue
        people = sorted(set(x for x in labels if x))
        counts = {p: labels.count(p) for p in people}
        print(f"{name}: {len(labels)} faces, {len(labels) - sum(counts.values())} unknown, {counts}")
        if args.sheets:
            for path in contact_sheets(data, args.cache / "sheets"):
                print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
