"""Settings: one typed source, flags over environment over defaults, one-line errors."""

from __future__ import annotations

import pytest

from facepipe.errors import FacepipeError
from facepipe.settings import Settings, WorkerSettings, load_settings, load_worker_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("FACEPIPE_"):
            monkeypatch.delenv(name)


def test_defaults_then_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().frame_step == 15 and Settings().det_input == "auto"
    monkeypatch.setenv("FACEPIPE_FRAME_STEP", "5")
    monkeypatch.setenv("FACEPIPE_DET_INPUT", "320x256")
    assert load_settings().frame_step == 5 and load_settings().det_input == (320, 256)
    assert load_settings(frame_step="7").frame_step == 7  # a flag wins
    monkeypatch.setenv("FACEPIPE_SIM_THRESH", "")  # empty variables are ignored
    assert load_settings().online_sim_thresh() == 0.40
    assert load_settings(clustering="seed").online_sim_thresh() == 0.27  # the seed's own default
    assert load_settings(clustering="seed", sim_thresh="0.3").online_sim_thresh() == 0.3


def test_bad_values_are_one_line_errors_naming_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FacepipeError, match=r"^bad value for --frame-step: .*facepipe run --help"):
        load_settings(frame_step="0")
    with pytest.raises(FacepipeError, match="--det-input.*multiples of 32"):
        load_settings(det_input="641x480")
    monkeypatch.setenv("FACEPIPE_VISIBILITY_TIMEOUT", "soon")
    with pytest.raises(FacepipeError, match="^bad value for FACEPIPE_VISIBILITY_TIMEOUT"):
        load_worker_settings()


def test_broker_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().broker_url() is None  # the embedded default
    monkeypatch.setenv("FACEPIPE_BROKER_URL", "redis://workers:6379/0")
    assert Settings().broker_url() == "redis://workers:6379/0"
    assert Settings(redis_host="h", redis_port=7000).broker_url() == "redis://h:7000/0"
    assert Settings(broker="redis://b:1/2", redis_host="h").broker_url() == "redis://b:1/2"


def test_worker_settings_have_one_default_each_and_travel_as_env() -> None:
    worker = WorkerSettings()
    assert worker.visibility_timeout == 900 and worker.task_events and worker.decode_threads == 1
    chosen = WorkerSettings(ort_threads=2, task_events=False, preload="detector, embedder")
    env = chosen.as_env()
    assert env == {
        "FACEPIPE_ORT_THREADS": "2",
        "FACEPIPE_TASK_EVENTS": "0",
        "FACEPIPE_PRELOAD": "detector, embedder",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        again = WorkerSettings()
    assert again.ort_threads == 2 and not again.task_events
    assert again.preloaded() == {"detector", "embedder"}


def test_model_settings_are_shared_by_run_and_worker() -> None:
    shared = {"det_model", "rec_model", "providers", "ort_threads", "backend", "precision"}
    assert shared <= set(Settings.model_fields) and shared <= set(WorkerSettings.model_fields)
    for name in shared:
        assert Settings.model_fields[name].default == WorkerSettings.model_fields[name].default


def test_speed_settings_default_to_auto_and_take_numbers_or_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.num_det, defaults.num_emb, defaults.backend, defaults.precision, defaults.decoder) == (
        "auto",
        "auto",
        "auto",
        "auto",
        "auto",
    )
    chosen = load_settings(
        num_det="2", num_emb="auto", det_input="AUTO", backend="openvino", precision="bf16"
    )
    assert (chosen.num_det, chosen.num_emb, chosen.det_input) == (2, "auto", "auto")
    monkeypatch.setenv("FACEPIPE_NUM_EMB", "3")
    monkeypatch.setenv("FACEPIPE_DECODER", "opencv")
    assert load_settings().num_emb == 3 and load_settings().decoder == "opencv"
    for flag, value in (("num_det", "0"), ("num_emb", "many"), ("backend", "tpu"), ("precision", "fp16")):
        with pytest.raises(FacepipeError, match=f"^bad value for --{flag.replace('_', '-')}: "):
            load_settings(**{flag: value})


def test_det_input_auto_is_640_on_the_long_side_and_a_multiple_of_32_on_the_short() -> None:
    from facepipe.settings import auto_det_input

    assert auto_det_input(1280, 720) == (640, 384)  # 16:9: 640x360 letterboxed, 24 rows of padding
    assert auto_det_input(1920, 1080) == (640, 384)
    assert auto_det_input(640, 360) == (640, 384)
    assert auto_det_input(708, 532) == (640, 512)  # 4:3-ish: 640x481 needs 512
    assert auto_det_input(720, 1280) == (384, 640)  # portrait
    assert auto_det_input(640, 640) == (640, 640)
    assert auto_det_input(1440, 1080) == (640, 480)
