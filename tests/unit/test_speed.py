"""The pure parts of issue #11: keyframe chunk plans, the detector input, worker sizing, runtime choice."""

from __future__ import annotations

import pytest

from facepipe.app.summary import DecodeFigures
from facepipe.distributed.embedded import size_workers
from facepipe.errors import FacepipeError
from facepipe.inference.runtimes import resolve_runtime
from facepipe.media.keyframes import KeyframeIndex
from facepipe.media.plan import plan_keyframe_chunks
from facepipe.records import Chunk, RunParams, VideoInfo, sampled_frames
from facepipe.settings import Settings

#: a 5-minute TV edit's shape: GOPs cut by scene changes, one long GOP, a short tail
INDEX = KeyframeIndex(1000, (0, 40, 100, 350, 380, 700, 960), tuple(range(0, 7000, 1000)), 1000)
ALL_INTRA = KeyframeIndex(200, tuple(range(200)), tuple(range(0, 2000, 10)), 200)


def _check_plan(index: KeyframeIndex, chunks: list[Chunk], step: int) -> None:
    frames = [f for c in chunks for f in c.frames(step)]
    assert frames == list(range(0, index.frame_count, step)), "every sampled frame once, in order"
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    for chunk, after in zip(chunks, chunks[1:], strict=False):
        assert chunk.stop == after.start, "chunks tile the video"
    for chunk in chunks:
        assert chunk.key in index.keys and chunk.key <= chunk.start
        assert chunk.key_pts == index.key_pts[index.keys.index(chunk.key)]
        assert chunk.frames(step), "no chunk without a sampled frame"


@pytest.mark.parametrize("step", [1, 3, 15, 37])
@pytest.mark.parametrize("size", [1, 8, 20])
def test_keyframe_plans_cover_every_sampled_frame_once_in_whole_gops(step: int, size: int) -> None:
    chunks = plan_keyframe_chunks(INDEX, step, size)
    _check_plan(INDEX, chunks, step)
    for chunk in chunks:  # whole GOPs: a chunk starts at its own keyframe, so no GOP is decoded twice
        assert chunk.start == chunk.key and chunk.start in INDEX.keys


def test_a_long_gop_is_one_chunk_with_many_sampled_frames() -> None:
    chunks = plan_keyframe_chunks(INDEX, 15, 8)
    long_gop = next(c for c in chunks if c.start == 100)
    assert (long_gop.stop, len(long_gop.frames(15))) == (350, 17)
    assert len(plan_keyframe_chunks(INDEX, 15, 8)) < len(range(0, 1000, 15 * 8)) + 3


def test_all_intra_chunks_start_at_their_first_sampled_frame() -> None:
    chunks = plan_keyframe_chunks(ALL_INTRA, 15, 4)
    _check_plan(ALL_INTRA, chunks, 15)
    assert [c.start for c in chunks] == [0, 60, 120, 180]


def test_too_few_gops_are_split_and_the_parts_decode_from_the_gops_keyframe() -> None:
    one_gop = KeyframeIndex(264, (0, 250), (0, 5000), 264)
    assert len(plan_keyframe_chunks(one_gop, 5, 8)) == 2
    chunks = plan_keyframe_chunks(one_gop, 5, 8, min_chunks=4)
    _check_plan(one_gop, chunks, 5)
    assert len(chunks) == 4
    assert [c.key for c in chunks].count(0) == 3, "the long GOP split in 3, each decoding from frame 0"


def test_chunks_number_frames_as_multiples_of_the_step() -> None:
    assert list(sampled_frames(100, 160, 15)) == [105, 120, 135, 150]
    chunk = Chunk(seq=0, start=100, stop=160, key=90, key_pts=9000)
    assert list(chunk.frames(15)) == [105, 120, 135, 150]
    with pytest.raises(ValueError, match="after the chunk's start"):
        Chunk(seq=0, start=100, stop=160, key=120, key_pts=1)
    with pytest.raises(ValueError, match="come together"):
        Chunk(seq=0, start=100, stop=160, key=90)


def test_det_input_auto_is_resolved_from_the_video_once() -> None:
    hd = RunParams.build(Settings(), VideoInfo("/v.mp4", 100, 25.0, 1280, 720))
    assert hd.det_input == (640, 384)
    assert RunParams.build(Settings(), VideoInfo("/v.mp4", 100, 25.0, 708, 532)).det_input == (640, 512)
    assert RunParams.build(
        Settings(det_input="640x640"), VideoInfo("/v.mp4", 1, 25.0, 1280, 720)
    ).det_input == (
        640,
        640,
    )
    assert (hd.backend, hd.precision, hd.decoder) == ("auto", "auto", "auto")
    assert RunParams.build(Settings(), VideoInfo("/v.mp4", 1, 25.0, 64, 64), "pyav").decoder == "pyav"


@pytest.mark.parametrize(
    ("cores", "expected"), [(1, (1, 1)), (2, (1, 1)), (3, (1, 2)), (4, (2, 2)), (8, (5, 3)), (16, (10, 6))]
)
def test_auto_workers_share_the_cores_by_stage_cost(cores: int, expected: tuple[int, int]) -> None:
    num_det, num_emb = size_workers("auto", "auto", cores, {"detect": 0.037, "embed": 0.019})
    assert (num_det, num_emb) == expected
    assert num_det + num_emb <= max(2, cores), "one process per core at most"


def test_a_given_worker_count_is_kept_and_auto_takes_the_rest() -> None:
    assert size_workers(3, 2, 2) == (3, 2)
    assert size_workers("auto", 2, 8) == (6, 2)
    assert size_workers(1, "auto", 4) == (1, 3)
    assert size_workers("auto", 4, 2) == (1, 4)


def test_runtime_choice_and_its_one_line_errors() -> None:
    assert resolve_runtime("onnxruntime", "fp32", "cpu").backend == "onnxruntime"
    assert resolve_runtime("openvino", "fp32", "cpu", kind="detector").backend == "openvino"
    if resolve_runtime("auto", "fp32", "cpu", kind="embedder").backend == "openvino":  # x86-64 with OpenVINO
        assert resolve_runtime("auto", "fp32", "cpu", kind="detector").backend == "onnxruntime"
        assert (
            resolve_runtime("auto", "bf16", "cpu", kind="detector", capabilities=("BF16",)).backend
            == "openvino"
        )
    assert resolve_runtime("openvino", "bf16", "cpu", capabilities=("BF16",)).precision == "bf16"
    with pytest.raises(FacepipeError, match="needs --backend openvino"):
        resolve_runtime("onnxruntime", "bf16", "cpu")
    with pytest.raises(FacepipeError, match="OpenVINO runs on CPUs"):
        resolve_runtime("openvino", "fp32", "cuda")
    with pytest.raises(FacepipeError, match="no native bf16"):
        resolve_runtime("openvino", "bf16", "cpu", capabilities=("FP32",))
    with pytest.raises(FacepipeError, match="unknown --backend"):
        resolve_runtime("tpu")


def test_precision_auto_and_int8_resolve_per_model() -> None:
    """auto: SCRFD in fp32, ArcFace in bf16 where the CPU has it natively (else fp32, and always
    on a GPU or ONNX Runtime); int8: ArcFace only."""
    bf16_cpu, plain_cpu = ("FP32", "BF16", "INT8"), ("FP32", "INT8")
    detector = resolve_runtime("auto", "auto", "cpu", kind="detector", capabilities=bf16_cpu)
    assert detector.precision == "fp32"
    embedder = resolve_runtime("auto", "auto", "cpu", kind="embedder", capabilities=bf16_cpu)
    if embedder.backend == "openvino":  # x86-64 with OpenVINO
        assert embedder.precision == "bf16"
        assert (
            resolve_runtime("auto", "auto", "cpu", kind="embedder", capabilities=plain_cpu).precision
            == "fp32"
        )
        assert (
            resolve_runtime("auto", "int8", "cpu", kind="embedder", capabilities=plain_cpu).precision
            == "int8"
        )
    assert (
        resolve_runtime("onnxruntime", "auto", "cpu", kind="embedder", capabilities=bf16_cpu).precision
        == "fp32"
    )
    assert resolve_runtime("auto", "int8", "cpu", kind="detector").precision == "fp32"
    with pytest.raises(FacepipeError, match="--precision int8 needs --backend openvino"):
        resolve_runtime("onnxruntime", "int8", "cpu", kind="embedder")


def test_decode_figures_compare_decoded_frames_with_the_video() -> None:
    figures = DecodeFigures.of(5121, {"frame_count": 8972, "frame_step": 15, "decoder": "pyav"})
    assert figures.frames_to_last_sample == 8971 and figures.video_frames == 8972
    assert figures.per_frame_to_last_sample == pytest.approx(5121 / 8971, abs=1e-3)
    assert DecodeFigures.of(0, {}).per_video_frame is None
