"""Model files, execution providers, and the two inference backends (ONNX Runtime, OpenVINO)."""

from __future__ import annotations

import platform

import onnxruntime
import pytest

from facepipe.errors import FacepipeError
from facepipe.inference.detector import FaceDetector
from facepipe.inference.embedder import FaceEmbedder
from facepipe.inference.files import resolve_model
from facepipe.inference.runtimes import (
    cpu_capabilities,
    execution_providers,
    openvino_installed,
    resolve_runtime,
)
from tests.conftest import insightface_image
from tests.helpers import facepipe


def test_auto_takes_cuda_only_where_onnxruntime_has_it() -> None:
    chosen = execution_providers("auto")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert chosen[0] == "CUDAExecutionProvider"
    else:
        assert chosen == ["CPUExecutionProvider"]
    assert execution_providers("cpu") == ["CPUExecutionProvider"]


def test_without_a_gpu_the_models_run_on_the_cpu_and_find_the_six_faces() -> None:
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA; the CPU fallback is what is tested here")
    detector = FaceDetector(resolve_model("detector"), 1, "auto")
    embedder = FaceEmbedder(resolve_model("embedder"), 1, "auto")
    assert detector.active_providers() == ["CPUExecutionProvider"]
    assert embedder.active_providers() == ["CPUExecutionProvider"]
    faces = detector.detect(insightface_image(), min_face=0)
    assert len(faces) == 6 and all(f.kps is not None for f in faces)


def test_asking_for_cuda_without_it_is_one_clear_line(t1_video) -> None:
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(FacepipeError, match="onnxruntime-gpu"):
        execution_providers("cuda")
    proc = facepipe("run", str(t1_video), "--providers", "cuda", "--no-progress", timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "--providers" in proc.stderr
    bad = facepipe("run", str(t1_video), "--providers", "tpu", "--no-progress", timeout=60)
    assert bad.returncode == 1 and "--providers" in bad.stderr


def _real_crops() -> list:
    """The six faces of t1.jpg, plus hamilton's where ../shared is present, aligned as the pipeline aligns."""
    from facepipe.inference.align import align
    from tests.conftest import SHARED

    detector = FaceDetector(resolve_model("detector"), 1)
    crops = []
    images = [insightface_image()]
    clip = SHARED / "videos" / "hamilton_short.mp4"
    if clip.is_file():
        import cv2

        cap = cv2.VideoCapture(str(clip))
        for index in range(0, 275, 25):
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            if ok:
                images.append(frame)
        cap.release()
    for image in images:
        crops += [align(image, face) for face in detector.detect(image, (640, 640), min_face=20)]
    return crops


def test_both_backends_give_unit_embeddings_agreeing_on_real_crops() -> None:
    import numpy as np

    crops = _real_crops()
    assert len(crops) >= 6
    ort = FaceEmbedder(resolve_model("embedder"), 1, "cpu", "onnxruntime").embed(crops)
    openvino = FaceEmbedder(resolve_model("embedder"), 1, "cpu", "openvino", "fp32")
    ov = openvino.embed(crops)
    assert openvino.runtime.describe() == "openvino fp32 on CPU"
    for matrix in (ort, ov):
        assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(ort * ov, axis=1)
    assert cosines.min() >= 0.999, cosines.min()
    if "BF16" in cpu_capabilities():
        bf16 = FaceEmbedder(resolve_model("embedder"), 1, "cpu", "openvino", "bf16").embed(crops)
        assert np.sum(ort * bf16, axis=1).min() >= 0.99


def test_both_backends_find_the_same_faces() -> None:
    import numpy as np

    image = insightface_image()
    boxes = {}
    for backend in ("onnxruntime", "openvino"):
        detector = FaceDetector(resolve_model("detector"), 1, "cpu", backend)
        boxes[backend] = np.array([f.bbox for f in detector.detect(image, (640, 448), min_face=0)])
        assert detector._net.resolution_session_input_sizes == ((640, 448),)  # a session per input size
    assert boxes["onnxruntime"].shape == boxes["openvino"].shape == (6, 4)
    assert np.abs(boxes["onnxruntime"] - boxes["openvino"]).max() < 0.01


def test_bf16_where_it_cannot_run_is_one_clear_line(t1_video) -> None:
    with pytest.raises(
        FacepipeError, match=r"^--precision bf16: this CPU has no native bf16.*--precision auto$"
    ):
        resolve_runtime("auto", "bf16", capabilities=("FP32", "INT8"))
    # A remote worker on such a CPU runs fp32 and says so (the run's summary lists it).
    fallback = resolve_runtime("auto", "bf16", strict=False, capabilities=("FP32",))
    assert (fallback.backend, fallback.precision) == ("openvino", "fp32")
    assert "bf16 asked for" in fallback.describe()
    proc = facepipe(
        "run", str(t1_video), "--precision", "bf16", "--backend", "onnxruntime", "--no-progress", timeout=60
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--precision bf16 needs --backend openvino" in proc.stderr and "Traceback" not in proc.stderr
    if "BF16" not in cpu_capabilities():  # this CPU itself: the same one line from the CLI
        proc = facepipe("run", str(t1_video), "--precision", "bf16", "--no-progress", timeout=60)
        assert proc.returncode == 1 and "no native bf16" in proc.stderr


def test_auto_backend_takes_the_faster_runtime_per_model_and_the_summary_says_so(t1_video, tmp_path) -> None:
    from tests.helpers import read_run

    detect = resolve_runtime("auto", "auto", "cpu", kind="detector")
    embed = resolve_runtime("auto", "auto", "cpu", kind="embedder")
    if openvino_installed() and platform.machine() == "x86_64":
        assert (detect.backend, embed.backend) == ("onnxruntime", "openvino")  # bench/models_bench.py
        assert detect.precision == "fp32"
        assert embed.precision == ("bf16" if "BF16" in cpu_capabilities() else "fp32")
    else:
        assert detect.backend == embed.backend == "onnxruntime"
    proc = facepipe("run", str(t1_video), "--frame-step", "6", "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    summary, _ = read_run(tmp_path)
    assert summary["runtimes"] == [f"detect: {detect.describe()}", f"embed: {embed.describe()}"]
    assert f"models: detect: {detect.describe()}" in proc.stdout
    assert summary["params"]["backend"] == "auto" and summary["params"]["precision"] == "auto"


def test_alignment_is_insightfaces_norm_crop_bit_for_bit() -> None:
    """facepipe's norm_crop drops scikit-image, not a bit: the same matrices and crops as
    InsightFace's on real landmarks (t1.jpg, mirrored too) and thousands of random ones."""
    import warnings

    import numpy as np
    from insightface.utils import face_align

    from facepipe.inference.align import ARCFACE_TEMPLATE, norm_crop, umeyama

    image = insightface_image()
    detector = FaceDetector(resolve_model("detector"), 1, "cpu", "onnxruntime", "fp32")
    sets = [f.kps for f in detector.detect(image, min_face=0)]
    sets += [f.kps for f in detector.detect(image[:, ::-1].copy(), min_face=0)]
    rng = np.random.default_rng(0)
    for _ in range(2000):
        kps = ARCFACE_TEMPLATE * rng.uniform(0.3, 4) + rng.uniform(0, 400, 2) + rng.normal(0, 4, (5, 2))
        sets.append((kps[:, ::-1] if rng.random() < 0.2 else kps).astype(np.float32))
    for kps in sets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            expected_matrix = face_align.estimate_norm(kps, 112)
            expected_crop = face_align.norm_crop(image, kps, 112)
        assert np.array_equal(umeyama(kps, ARCFACE_TEMPLATE)[0:2, :], expected_matrix)
        assert np.array_equal(norm_crop(image, kps), expected_crop)


def test_scrfd_decoding_kept_anchors_only_equals_insightfaces(t1_video) -> None:
    """The detector decodes boxes and landmarks of the anchors above the threshold only: the
    same faces as InsightFace's own SCRFD.forward, bit for bit, at both input sizes."""
    import types

    import cv2
    import numpy as np
    from insightface.model_zoo.scrfd import SCRFD

    from facepipe.inference.detector import _forward

    frames = [insightface_image()]
    cap = cv2.VideoCapture(str(t1_video))
    while len(frames) < 12:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    for backend in ("onnxruntime", "openvino"):
        net = FaceDetector(resolve_model("detector"), 1, "cpu", backend, "fp32").load()._net
        for frame in frames:
            for size in ((640, 384), (640, 640)):
                for threshold in (0.5, 0.7):
                    net.forward = types.MethodType(_forward, net)
                    ours = net.detect(frame, input_size=size, det_thresh=threshold)
                    net.forward = types.MethodType(SCRFD.forward, net)
                    theirs = net.detect(frame, input_size=size, det_thresh=threshold)
                    assert np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[1], theirs[1])


def test_int8_arcface_is_built_once_cached_and_close_to_fp32(tmp_path, monkeypatch) -> None:
    """--precision int8: ArcFace quantized at first use from photos the dependencies ship, cached
    (a second load quantizes nothing), its embeddings close to fp32's and the six people of t1.jpg
    still six; SCRFD stays fp32."""
    import numpy as np

    from facepipe.inference.align import align
    from facepipe.inference.int8 import int8_model, nncf_installed

    if not nncf_installed():
        pytest.skip("nncf is not installed (pip install 'facepipe[int8]'); int8 cannot be built")
    monkeypatch.setenv("FACEPIPE_MODEL_CACHE", str(tmp_path / "models"))
    image = insightface_image()
    detector = FaceDetector(resolve_model("detector"), 1, "cpu", "auto", "int8")
    crops = [align(image, face) for face in detector.detect(image, min_face=0)]
    assert detector.runtime is not None and detector.runtime.precision == "fp32"
    int8 = FaceEmbedder(resolve_model("embedder"), 1, "cpu", "auto", "int8")
    quantized = int8.embed(crops)
    assert int8.runtime is not None and int8.runtime.describe() == "openvino int8 on CPU"
    built = int8_model(resolve_model("embedder"))
    stamp = built.stat().st_mtime_ns
    assert built.parent == tmp_path / "models" and built.with_suffix(".bin").is_file()
    again = FaceEmbedder(resolve_model("embedder"), 1, "cpu", "auto", "int8").embed(crops)
    assert int8_model(resolve_model("embedder")).stat().st_mtime_ns == stamp  # loaded, not rebuilt
    np.testing.assert_array_equal(again, quantized)
    reference = FaceEmbedder(resolve_model("embedder"), 1, "cpu", "openvino", "fp32").embed(crops)
    cosines = np.sum(quantized * reference, axis=1)
    assert len(crops) == 6 and cosines.min() > 0.97
    assert (np.argmax(quantized @ reference.T, axis=1) == np.arange(6)).all()
