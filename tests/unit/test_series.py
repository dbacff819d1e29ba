"""The series pass: one identity per person across episodes, stable ids with a bank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepipe.app.banks import read_series_bank, write_series_bank
from facepipe.app.series_outputs import format_series, write_series
from facepipe.clustering.final import FinalIdentities
from facepipe.clustering.series import EpisodeResult, series_pass
from facepipe.errors import FacepipeError
from facepipe.records import DIM, FaceLine

RNG = np.random.default_rng(11)
PEOPLE = RNG.normal(size=(8, DIM))
PEOPLE /= np.linalg.norm(PEOPLE, axis=1, keepdims=True)


def _episode(name: str, people: list[int], faces_each: int = 4, together: bool = False) -> EpisodeResult:
    """An episode whose identity ``k`` is person ``people[k]``; ``together``: all in every frame."""
    lines, embeddings = [], []
    for k, person in enumerate(people):
        for n in range(faces_each):
            frame = n if together else 100 * k + n
            v = PEOPLE[person] + 0.8 * RNG.normal(size=DIM) / np.sqrt(DIM)
            embeddings.append(v / np.linalg.norm(v))
            lines.append(
                FaceLine(
                    frame=frame,
                    time_s=frame / 25,
                    bbox=[0, 0, 50, 50],
                    det_score=0.9,
                    identity=k,
                    similarity=None,
                )
            )
    order = sorted(range(len(lines)), key=lambda i: lines[i].frame)
    k = len(people)
    final = FinalIdentities(
        embeddings=np.zeros((k, DIM), np.float32),
        centroids=np.zeros((k, DIM), np.float32),
        refine_counts=np.full(k, faces_each),
        counts=np.full(k, faces_each),
        extras=np.zeros(k, bool),
        faces=[lines[i] for i in order],
        face_embeddings=np.array([embeddings[i] for i in order], np.float32),
    )
    return EpisodeResult(name, f"/videos/{name}.mp4", 25.0, 5, final)


def _who(result, episode: int) -> dict[int, int]:
    """Episode identity -> series id, for one of the run's episodes."""
    bank = result.bank
    mine = bank.face_episodes == result.episode_index[episode]
    return dict(
        zip(bank.face_episode_identities[mine].tolist(), bank.face_identities[mine].tolist(), strict=True)
    )


def test_one_id_per_person_across_episodes_numbered_by_first_appearance() -> None:
    result = series_pass([_episode("e1", [3, 1]), _episode("e2", [5, 1, 3])], None, 0.25)
    assert _who(result, 0) == {0: 0, 1: 1} and _who(result, 1) == {0: 2, 1: 1, 2: 0}
    bank = result.bank
    assert bank.identity_ids.tolist() == [0, 1, 2] and bank.counts.tolist() == [8, 8, 4]
    assert bank.episode_counts.tolist() == [[4, 4], [4, 4], [0, 4]]
    assert bank.first_frame[2].tolist() == [-1, 0] and bank.episodes.tolist() == ["e1", "e2"]
    np.testing.assert_allclose(np.linalg.norm(bank.centroids, axis=1), 1.0, atol=1e-5)


def test_people_who_share_a_frame_are_never_joined() -> None:
    # two identities of one episode that are the same embedding-wise but side by side
    result = series_pass([_episode("e1", [2, 2], together=True)], None, 0.25)
    assert len(result.bank.identity_ids) == 2


def test_a_bank_keeps_its_ids_grows_into_a_superset_and_reports_conflicts(tmp_path: Path) -> None:
    first = series_pass([_episode("e1", [0, 1]), _episode("e2", [1, 2])], None, 0.25)
    write_series_bank(first.bank, tmp_path / "bank.npz")
    prior = read_series_bank(tmp_path / "bank.npz")
    again = series_pass([_episode("e3", [2, 6, 0])], prior, 0.25)
    assert _who(again, 0) == {0: 2, 1: 3, 2: 0}  # known people keep their ids; the new one gets 3
    old, new = first.bank, again.bank
    assert set(old.identity_ids.tolist()) <= set(new.identity_ids.tolist())
    assert (
        new.episodes.tolist() == ["e1", "e2", "e3"]
        and len(new.face_identities) == len(old.face_identities) + 12
    )
    np.testing.assert_array_equal(new.face_embeddings[: len(old.face_identities)], old.face_embeddings)
    assert again.known == {0, 1, 2} and again.conflicts == []
    # an episode where bank people 0 and 1 look like one person: reported, never renumbered
    blend = _episode("e4", [0])
    both = (PEOPLE[0] + PEOPLE[1]) / np.linalg.norm(PEOPLE[0] + PEOPLE[1])
    blend.final.face_embeddings[:] = both
    conflicted = series_pass([blend], prior, 0.25)
    assert [(c.a, c.b, c.episode, c.identity) for c in conflicted.conflicts] == [(0, 1, "e4", 0)]
    assert set(conflicted.bank.identity_ids.tolist()) == {0, 1, 2}
    summary = write_series(tmp_path / "series", conflicted, [blend], {"thresh": 0.25})
    assert summary["conflicts"][0]["note"].startswith(
        "bank identities 0 and 1 look like one person: e4 identity 0"
    )
    assert (tmp_path / "series" / "identities.csv").read_text().splitlines()[0].endswith("e4 (s)")
    printed = format_series(summary, tmp_path / "series")  # once a KeyError after the outputs
    assert "NOTE: bank identities 0 and 1 look like one person" in printed and "decide by hand" in printed


def test_the_result_depends_only_on_the_inputs() -> None:
    episodes = [_episode("e1", [4, 5, 6]), _episode("e2", [6, 4])]
    a, b = series_pass(episodes, None, 0.25), series_pass(episodes, None, 0.25)
    for key in ("identity_ids", "face_identities", "centroids", "episode_counts"):
        np.testing.assert_array_equal(getattr(a.bank, key), getattr(b.bank, key))


def test_a_failed_episode_is_left_out_and_named(tmp_path: Path) -> None:
    failed = EpisodeResult("e2", "/videos/e2.mp4", 25.0, 5, None, "cannot read the video")
    result = series_pass([_episode("e1", [0]), failed], None, 0.25)
    summary = write_series(tmp_path, result, [_episode("e1", [0]), failed], {})
    assert summary["missing"] == ["e2"] and summary["episodes"][1]["status"] == "failed"
    assert result.bank.episodes.tolist() == ["e1"]


def test_bad_banks_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(FacepipeError, match="not found"):
        read_series_bank(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FacepipeError, match="not a readable .npz bank"):
        read_series_bank(tmp_path / "junk.npz")
    np.savez(tmp_path / "episode.npz", run_id="x", centroids=np.zeros((1, DIM)))
    with pytest.raises(FacepipeError, match="is not a facepipe bank: missing identity_ids"):
        read_series_bank(tmp_path / "episode.npz")
    good = series_pass([_episode("e1", [0])], None, 0.25).bank
    good.centroids = np.zeros((1, 128), np.float32)
    write_series_bank(good, tmp_path / "small.npz")
    with pytest.raises(FacepipeError, match="128-dimensional, this model's are 512"):
        read_series_bank(tmp_path / "small.npz")
