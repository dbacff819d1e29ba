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
    assert Settings().frame_step == 15 and Settings().det_input == (640, 640)
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
    shared = {"det_model", "rec_model", "providers", "ort_threads"}
    assert shared <= set(Settings.model_fields) and shared <= set(WorkerSettings.model_fields)
    for name in shared:
        assert Settings.model_fields[name].default == WorkerSettings.model_fields[name].default
