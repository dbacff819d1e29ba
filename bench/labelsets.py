"""Ground-truth label sets for clustering accuracy, built from ../shared/data into /tmp (cached).

    python bench/labelsets.py [--cache DIR] [--force] [--sheets] [--only SET ...]

Each label set is a video plus, for every face the pipeline detects in it at the default
settings, its frame, detector index, box, embedding and true person (or unknown). Faces
come from :func:`facepipe.pipeline.detect_chunk` and :func:`facepipe.pipeline.embed_record`
run in this process over the chunks a run plans, so they are the faces ``facepipe run``
sees. Detections are computed once and cached as ``DIR/<set>.faces.npz`` (rendered videos
as ``DIR/<set>.mp4``); labels are recomputed from them on every load and also written as
``DIR/<set>.labels.json`` (``[{frame, bbox, label}]``) to score a real run with
:func:`facepipe.evaluate.evaluate_run`. Nothing is written into the repository.
``--sheets`` writes one contact sheet of face crops per label (and unknown) to check by eye.

The sets (frame step 3, 1280x720 at 30 fps where rendered; cheap on two cores):

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
"""

from __future__ import annotations

import argparse
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
DETECT_VERSION = 1  # bump to re-detect cached sets when the videos or detection change

SIZE = (1280, 720)
FPS = 30.0
STEP = 3
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
SETS = ("slideshow", "photos_tv", "photos_hard", "hamilton", "call", "dance", "tv")
RENDERED = ("slideshow", "photos_tv", "photos_hard", "tv")

#: Labels set by eye where the reference rule cannot decide, as rules on the *source* clip:
#: (clip, first frame, last frame, box-centre x from, x to, label). Checked on contact sheets
#: (``--sheets``). hamilton frames 21-33 are a close-up profile of Lin-Manuel Miranda (the only
#: face); frames 212-274 are one static audience shot of four people whose places never change.
HAND = (
    ("hamilton", 15, 40, 250, 640, "hamilton:lin_manuel_miranda"),
    ("hamilton", 212, 275, 0, 140, "hamilton:audience_left"),
    ("hamilton", 212, 275, 140, 300, "hamilton:audience_centre"),
    ("hamilton", 212, 275, 300, 370, "hamilton:barack_obama"),
    ("hamilton", 212, 275, 370, 640, "hamilton:michelle_obama"),
)


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


def models(threads: int = 2):
    from facepipe.models import FaceDetector, FaceEmbedder, resolve_model

    return FaceDetector(resolve_model("detector"), threads), FaceEmbedder(resolve_model("embedder"), threads)


def run_params(video: Path, step: int = STEP):
    """The run parameters ``facepipe run VIDEO --frame-step STEP`` records (a RunParams)."""
    from facepipe.contracts import RunParams
    from facepipe.settings import Settings
    from facepipe.video import probe

    # The sets were labelled at the seed's detector input; --det-input auto finds slightly other
    # faces (bench/speed_accuracy.py measures how), so the sets stay pinned to 640x640.
    return RunParams.build(Settings(frame_step=step, det_input="640x640"), probe(video))


def detect_video(video: Path, step: int, detector, embedder) -> dict[str, np.ndarray]:
    """Every face the pipeline finds in ``video`` at the default settings, in writer order."""
    from facepipe.pipeline import detect_chunk, embed_record
    from facepipe.settings import Settings
    from facepipe.video import plan_chunks, probe

    params = run_params(video, step)
    info = probe(video)
    frames, index, boxes, scores, embs = [], [], [], [], []
    sampled = 0
    for chunk in plan_chunks(info.frame_count, step, Settings().chunk_size):
        record = embed_record(detect_chunk(chunk, params, detector), embedder, False)
        sampled += record.frames_sampled
        matrix = record.embedding_matrix()
        for i, face in enumerate(record.faces):
            frames.append(face.frame)
            index.append(face.index)
            boxes.append(face.bbox)
            scores.append(face.det_score)
            embs.append(matrix[i])
    return {
        "frames": np.array(frames, dtype=np.int64),
        "index": np.array(index, dtype=np.int64),
        "bboxes": np.array(boxes, dtype=np.float32).reshape(-1, 4),
        "det_scores": np.array(scores, dtype=np.float32),
        "embeddings": np.array(embs, dtype=np.float32).reshape(-1, 512),
        "frames_sampled": np.array(sampled),
    }


def reference_embeddings(detector, embedder) -> dict[str, np.ndarray]:
    """``clip:person`` -> unit embedding of the largest face in that person's reference photo."""
    from facepipe.faces import align

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


def source_size(source: str) -> tuple[int, int]:
    if source.startswith("photo:"):
        image = cv2.imread(str(SHARED / "labelled" / "deepface" / source.split(":", 1)[1]))
        return image.shape[1], image.shape[0]
    cap = cv2.VideoCapture(str(SHARED / "videos" / CLIPS[source][0]))
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    return size


def clip_length(clip: str) -> int:
    cap = cv2.VideoCapture(str(SHARED / "videos" / CLIPS[clip][0]))
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


def plan_for(name: str) -> list[list[Tile]]:
    if name == "slideshow":
        return slideshow_plan()
    if name == "photos_tv":
        return photos_tv_plan()
    if name == "photos_hard":
        return photos_hard_plan()
    if name == "tv":
        return tv_plan()
    return clip_plan(name)


def video_for(name: str, cache: Path) -> Path:
    return cache / f"{name}.mp4" if name in RENDERED else SHARED / "videos" / CLIPS[name][0]


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


# ---------------------------------------------------------------- the cache
#
# Detections are the slow part, so they are cached apart from the labels:
# ``<set>.faces.npz`` (and the rendered video) stay until DETECT_VERSION changes, while
# the labels are recomputed from them on every load (milliseconds), so a labelling rule
# can change without re-running the models.


def _faces_path(name: str, cache: Path) -> Path:
    return cache / f"{name}.faces.npz"


def load_faces(name: str, cache: Path) -> dict[str, np.ndarray] | None:
    path = _faces_path(name, cache)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        out = {key: data[key] for key in data.files}
    return out if int(out.get("detect_version", -1)) == DETECT_VERSION else None


def detect_set(name: str, cache: Path, detector, embedder) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    video = video_for(name, cache)
    if name in RENDERED:
        render(video, plan_for(name))
    faces = detect_video(video, STEP, detector, embedder)
    faces["detect_version"] = np.array(DETECT_VERSION)
    np.savez_compressed(_faces_path(name, cache), **faces)
    print(
        f"labelsets: {name}: {len(faces['frames'])} faces in {int(faces['frames_sampled'])} sampled frames "
        f"({time.perf_counter() - started:.0f} s)",
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
    """A label set: the cached faces plus ``labels`` ('' = unknown), ``rules``, ``sources``."""
    faces = load_faces(name, cache)
    if faces is None:
        return None
    refs = load_refs(cache)
    plan = plan_for(name)
    labels, rules, sources = label_faces(faces, plan, refs)
    names = sorted(refs)
    data = {
        **faces,
        "name": name,
        "labels": np.array(labels, dtype=np.str_),
        "rules": np.array(rules, dtype=np.str_),
        "sources": np.array(sources, dtype=np.str_),
        "ref_names": np.array(names, dtype=np.str_),
        "ref_sims": faces["embeddings"] @ np.array([refs[n] for n in names], dtype=np.float32).T,
        "video": str(video_for(name, cache)),
        "step": STEP,
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


def ensure_sets(cache: Path = CACHE, force: bool = False, names=SETS) -> dict[str, dict[str, Any]]:
    """Every label set, detections from the cache where they are there (models load only if not)."""
    missing = [n for n in names if force or load_faces(n, cache) is None]
    if missing or not (cache / "refs.npz").is_file():
        if not (SHARED / "videos").is_dir():
            sys.exit(f"labelsets: shared data not found at {SHARED} (set FACEPIPE_SHARED_DATA)")
        detector, embedder = models()
        if force and (cache / "refs.npz").is_file():
            (cache / "refs.npz").unlink()
        load_refs(cache, detector, embedder)
        for name in missing:
            detect_set(name, cache, detector, embedder)
    return {name: load_set(name, cache) for name in names}


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
    parser.add_argument("--only", nargs="*", default=list(SETS), choices=SETS, help="sets to build")
    args = parser.parse_args(argv)
    sets = ensure_sets(args.cache, args.force, args.only)
    for name, data in sets.items():
        labels = data["labels"].tolist()
        people = sorted(set(x for x in labels if x))
        counts = {p: labels.count(p) for p in people}
        print(f"{name}: {len(labels)} faces, {len(labels) - sum(counts.values())} unknown, {counts}")
        if args.sheets:
            for path in contact_sheets(data, args.cache / "sheets"):
                print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
