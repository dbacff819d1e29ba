"""Model files and execution providers."""

from __future__ import annotations

import onnxruntime
import pytest

from facepipe.errors import FacepipeError
from facepipe.models import FaceDetector, FaceEmbedder, execution_providers, resolve_model
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
