"""The GPU path: both models on CUDA, NVDEC decoding (``scripts/gpu-check.sh`` runs these with
``pytest -m gpu`` on a machine with an NVIDIA GPU and ``onnxruntime-gpu``).

Skipped wherever ONNX Runtime has no CUDA provider, with that reason: CI's CPU machines run none.
"""

from __future__ import annotations

import hashlib

import onnxruntime
import pytest

from facepipe.inference.detector import FaceDetector
from facepipe.inference.embedder import FaceEmbedder
from facepipe.inference.files import resolve_model
from facepipe.media.samples import insightface_image, t1_frames, write_h264

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        "CUDAExecutionProvider" not in onnxruntime.get_available_providers(),
        reason="no CUDA in ONNX Runtime here (pip install onnxruntime-gpu on a machine with a GPU)",
    ),
]


def test_both_models_run_on_cuda_and_agree_with_the_cpu() -> None:
    image = insightface_image()
    gpu_det = FaceDetector(resolve_model("detector"), 0, "cuda", "onnxruntime", "fp32").load()
    cpu_det = FaceDetector(resolve_model("detector"), 1, "cpu", "onnxruntime", "fp32").load()
    assert gpu_det.runtime is not None and gpu_det.runtime.device == "CUDA"
    assert gpu_det.active_providers()[0] == "CUDAExecutionProvider"
    faces = gpu_det.detect(image, min_face=0)
    assert len(faces) == len(cpu_det.detect(image, min_face=0)) == 6
    from facepipe.inference.align import align

    crops = [align(image, face) for face in faces]
    gpu = FaceEmbedder(resolve_model("embedder"), 0, "cuda", "onnxruntime", "fp32").load()
    cpu = FaceEmbedder(resolve_model("embedder"), 1, "cpu", "onnxruntime", "fp32").load()
    assert float((gpu.embed(crops) * cpu.embed(crops)).sum(1).min()) > 0.9999


def test_nvdec_frames_equal_software_frames(tmp_path) -> None:
    from facepipe.media.keyframes import open_container

    video = write_h264(tmp_path / "clip.mp4", t1_frames(24), keyint=8)

    def md5s(container) -> list[str]:
        stream = container.streams.video[0]
        frames = container.decode(stream)
        return [hashlib.md5(f.to_ndarray(format="bgr24").tobytes()).hexdigest() for f in frames]

    with open_container(str(video)) as soft:
        expected = md5s(soft)
    with open_container(str(video), "cuda") as hard:
        if getattr(hard.streams.video[0].codec_context, "hwaccel", None) is None:
            pytest.skip("no NVDEC through PyAV on this GPU machine")
        assert md5s(hard) == expected
