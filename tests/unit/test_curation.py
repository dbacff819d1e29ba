"""Screen time, edits, names and the season pass with a person's edits: the pure parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facepipe.app.banks import read_series_bank, series_bank_of_run, write_series_bank
from facepipe.clustering.curation import Context, Edit, EditError, EditLog, People, apply_edit, replay
from facepipe.clustering.matching import decide_names, name_scores
from facepipe.clustering.screen import screen_times, segments
from facepipe.clustering.series import series_pass
from facepipe.records import DIM
from tests.unit.test_series import PEOPLE, _episode, _who

# -- screen time ------------------------------------------------------------------------------


def test_segments_join_consecutive_samples_and_end_a_step_after_the_last() -> None:
    # sampled every 5 frames at 25 fps: frames 0-10 in a row, then 30, then 40-45
    assert segments([0, 5, 10, 30, 40, 45], 5, 25.0) == [(0.0, 0.6), (1.2, 1.4), (1.6, 2.0)]
    assert segments([45], 5, 25.0, end_frame=47) == [(1.8, 1.88)]  # clipped to the video's end
    assert segments([], 5, 25.0) == []


def test_screen_time_per_identity() -> None:
    ids = [0, 1, 0, 0, 1]
    frames = [0, 0, 5, 30, 5]
    shots = [0, 0, 0, 1, 0]
    times = screen_times(ids, frames, shots, 25.0, 5, frame_count=100)
    zero, one = times[0], times[1]
    assert zero.faces == 3 and zero.seconds == 0.6 and zero.share == 0.15
    assert (zero.first_s, zero.last_s, zero.shots) == (0.0, 1.2, 2)
    assert zero.segments == [(0.0, 0.4), (1.2, 1.4)]
    # the segments of one face per frame add up to the screen time
    assert sum(b - a for a, b in zero.segments) == pytest.approx(zero.seconds)
    assert one.shots == 1 and one.segments == [(0.0, 0.4)]
    unknown = screen_times(ids, frames, None, 25.0, 5)
    assert unknown[0].shots is None and unknown[0].share is None


# -- edits ------------------------------------------------------------------------------------


def _people() -> People:
    """Identities 0-3: 0 and 1 share frame 10; 2 has tracks 7 and 8; 3 is alone."""
    labels = np.array([0, 1, 0, 2, 2, 2, 3])
    frames = np.array([10, 10, 20, 30, 40, 50, 60])
    tracks = np.array([1, 2, 1, 7, 7, 8, 9])
    return People.of(labels, frames, tracks)


def _edit(n: int, op: str, **fields: object) -> Edit:
    return Edit(n=n, op=op, **fields)  # type: ignore[arg-type]


def test_merge_rename_not_a_face_and_their_messages() -> None:
    people = _people()
    assert apply_edit(people, _edit(1, "merge", id=2, ids=[3]))
    assert people.ids == [0, 1, 2] and (people.labels == 2).sum() == 4
    assert people.anchors.tolist() == [0, 1, 0, 2, 2, 2, 3]  # the merged faces keep their anchor
    assert not apply_edit(people, _edit(2, "merge", id=2, ids=[3]))  # the same merge again: nothing
    assert not apply_edit(people, _edit(2, "merge", id=3, ids=[2]))  # 3 is 2 now
    with pytest.raises(EditError, match=r"identities 0 and 1 are both in frame 10"):
        apply_edit(people, _edit(2, "merge", id=0, ids=[1]))
    with pytest.raises(EditError, match=r"unknown identity 9: the identities are 0, 1, 2"):
        apply_edit(people, _edit(2, "rename", id=9, name="Ross"))
    assert apply_edit(people, _edit(2, "rename", id=3, name="  Ross   Geller "))  # 3 resolves to 2
    assert people.names == {2: "Ross Geller"}
    assert not apply_edit(people, _edit(3, "rename", id=2, name="Ross Geller"))
    assert apply_edit(people, _edit(3, "rename", id=0, name="Rachel"))
    assert apply_edit(people, _edit(4, "not_a_face", id=1))
    assert people.ids == [0, 2] and not apply_edit(people, _edit(5, "not_a_face", id=1))
    with pytest.raises(EditError, match="was marked not a face by edit 4"):
        apply_edit(people, _edit(5, "rename", id=1, name="x"))
    with pytest.raises(EditError, match="different names"):
        apply_edit(people, _edit(5, "merge", id=0, ids=[2]))
    with pytest.raises(EditError, match="cannot be empty"):
        apply_edit(people, _edit(5, "rename", id=0, name="  "))


def test_a_merge_takes_the_name_of_the_named_one() -> None:
    people = _people()
    apply_edit(people, _edit(1, "rename", id=3, name="Ross"))
    apply_edit(people, _edit(2, "merge", id=2, ids=[3]))
    assert people.names == {2: "Ross"}


def test_split_by_tracks_makes_a_new_identity_that_is_never_joined_again() -> None:
    people = _people()
    split = _edit(1, "split", id=2, tracks=[8])
    assert apply_edit(people, split) and split.new_id == 4
    assert people.labels.tolist() == [0, 1, 0, 2, 2, 4, 3] and people.anchors[5] == 4
    assert not apply_edit(people, _edit(2, "split", id=2, tracks=[8]))  # in effect already
    with pytest.raises(EditError, match="were split apart by edit 1"):
        apply_edit(people, _edit(2, "merge", id=4, ids=[2]))
    with pytest.raises(EditError, match="has no track 5: its parts are track 7"):
        apply_edit(people, _edit(2, "split", id=2, tracks=[5]))
    with pytest.raises(EditError, match="that is all of identity 2"):
        apply_edit(people, _edit(2, "split", id=2, tracks=[7]))
    # a season splits by episode
    season = Context(parts_of=lambda e: [["e1", "e2"].index(x) for x in e.episodes])
    people = People.of(np.array([0, 0, 0]), np.array([1, 2, 3]), np.array([0, 0, 1]))
    assert apply_edit(people, _edit(1, "split", id=0, episodes=["e2"]), season)
    assert people.labels.tolist() == [0, 0, 1]


def test_undo_replays_the_rest_and_refuses_what_breaks_a_later_edit() -> None:
    log = EditLog(
        target="run",
        kind="run",
        edits=[
            _edit(1, "merge", id=2, ids=[3]),
            _edit(2, "split", id=2, tracks=[8], new_id=4),
            _edit(3, "rename", id=4, name="Joey"),
            _edit(4, "undo", edit=1),
        ],
    )
    assert [e.n for e in log.active()] == [2, 3] and log.next_n() == 5
    people = replay(_people(), log.active())
    assert people.ids == [0, 1, 2, 3, 4] and people.names == {4: "Joey"}
    broken = log.model_copy(update={"edits": [*log.edits, _edit(5, "undo", edit=2)]})
    with pytest.raises(EditError, match=r"edit 3 \(name 4 \"Joey\"\) no longer applies: unknown identity 4"):
        replay(_people(), broken.active())


# -- names from reference photos --------------------------------------------------------------


def test_names_need_the_threshold_and_the_margin() -> None:
    refs = [PEOPLE[0:1], PEOPLE[1:2], (PEOPLE[2:3] + PEOPLE[3:4])]  # the third photo is a blend
    centroids = np.stack([PEOPLE[0], PEOPLE[4], PEOPLE[2] + 0.02 * PEOPLE[0]])
    scores = name_scores(centroids, refs)
    found = decide_names([10, 11, 12], scores, ["ann", "bob", "cid"], thresh=0.25, margin=0.05)
    assert [(m.identity, m.verdict, m.name) for m in found] == [
        (10, "named", "ann"),
        (11, "unknown", found[1].name),
        (12, "named", "cid"),
    ]
    close = decide_names([1], np.array([[0.6, 0.58]]), ["ann", "bob"], 0.25, 0.05)[0]
    assert close.verdict == "ambiguous" and (close.name, close.runner_up) == ("ann", "bob")


# -- the season pass with a person's edits -----------------------------------------------------


def test_a_merge_in_the_bank_matches_either_look(tmp_path: Path) -> None:
    """A person a human merged from two looks (PEOPLE 0, 12 faces, and 5, 2 faces): a new episode
    showing the rarer look joins that person, though its linkage to all 14 faces (0.1) would not
    reach the threshold."""
    first = series_pass(
        [_episode("e1", [0, 1], faces_each=12), _episode("e2", [5, 2], faces_each=2)], None, 0.25
    )
    bank = first.bank
    assert _who(first, 0) == {0: 0, 1: 1} and _who(first, 1) == {0: 2, 1: 3}
    # the edit: 2 (look 5) is 0 (look 0), named; as curate writes it (labels change, anchors stay)
    bank.face_identities = np.where(bank.face_identities == 2, 0, bank.face_identities)
    bank.identity_ids = np.array([0, 1, 3])
    bank.names = np.array(["Ann", "", ""])
    bank.counts = np.array([14, 12, 2])
    bank.centroids = bank.centroids[[0, 1, 3]]
    bank.episode_counts = bank.episode_counts[[0, 1, 3]]
    bank.first_frame, bank.last_frame = bank.first_frame[[0, 1, 3]], bank.last_frame[[0, 1, 3]]
    write_series_bank(bank, tmp_path / "bank.npz")
    prior = read_series_bank(tmp_path / "bank.npz")
    assert prior.next_id == 4 and prior.name_of(0) == "Ann"
    later = series_pass([_episode("e3", [5, 6])], prior, 0.25)
    assert _who(later, 0) == {0: 0, 1: 4}  # look 5 is Ann; the new person gets 4, never the merged 2
    assert later.bank.name_of(0) == "Ann" and later.conflicts == []


def test_a_not_a_face_identity_is_never_made_again_and_kept_apart_pairs_are_no_conflict() -> None:
    first = series_pass([_episode("e1", [0, 1, 2])], None, 0.25)
    bank = first.bank
    gone = bank.face_identities == 2  # a person marked 2 not a face; 0 and 1 were split apart
    bank.rejected_embeddings = bank.face_embeddings[gone]
    bank.rejected_groups = np.full(int(gone.sum()), 2)
    keep = ~gone
    bank.face_embeddings, bank.face_identities = bank.face_embeddings[keep], bank.face_identities[keep]
    bank.face_episodes, bank.face_frames = bank.face_episodes[keep], bank.face_frames[keep]
    bank.face_bboxes, bank.face_episode_identities = (
        bank.face_bboxes[keep],
        bank.face_episode_identities[keep],
    )
    bank.face_anchors, bank.face_shots = bank.face_anchors[keep], bank.face_shots[keep]
    rows = [0, 1]
    bank.identity_ids, bank.names = bank.identity_ids[rows], bank.names[rows]
    bank.counts, bank.centroids = bank.counts[rows], bank.centroids[rows]
    bank.episode_counts, bank.first_frame, bank.last_frame = (
        bank.episode_counts[rows],
        bank.first_frame[rows],
        bank.last_frame[rows],
    )
    bank.kept_apart = np.array([[0, 1]])
    bank.check(Path("x"))
    blend = _episode("e2", [2, 0])
    both = (PEOPLE[0] + PEOPLE[1]) / np.linalg.norm(PEOPLE[0] + PEOPLE[1])
    blend.final.face_embeddings[blend.final.face_embeddings @ PEOPLE[0] > 0.5] = both
    later = series_pass([blend], bank, 0.25)
    assert later.removed == [("e2", 0, 4, 2)]  # person 2 looks like the not-a-face: left out
    assert 2 not in later.bank.identity_ids.tolist() and len(later.bank.rejected_groups) == 8
    assert later.conflicts == []  # matches 0 and 1, but a person split them: no conflict to report
    assert later.bank.next_id == 3


def test_a_run_bank_is_a_season_of_one() -> None:
    run = {
        "identity_ids": np.array([0, 2]),
        "face_identities": np.array([0, 2, 2]),
        "face_frames": np.array([0, 5, 10]),
        "face_embeddings": np.stack([PEOPLE[0], PEOPLE[1], PEOPLE[1]]).astype(np.float32),
        "face_bboxes": np.zeros((3, 4), np.float32),
        "face_shots": np.array([0, 0, 1]),
        "face_anchors": np.array([0, 1, 2]),
        "names": np.array(["Ann", ""]),
        "rejected_embeddings": np.zeros((0, DIM), np.float32),
        "rejected_groups": np.zeros(0, np.int64),
        "kept_apart": np.zeros((0, 2), np.int64),
        "fps": 25.0,
        "frame_step": 5,
        "frame_count": 20,
        "next_id": 3,
        "model": "m",
        "video": "/videos/pilot.mp4",
        "run_id": "r1",
    }
    bank = series_bank_of_run(run, Path("/out/pilot/bank.npz"))
    bank.check(Path("x"))
    assert bank.episodes.tolist() == ["pilot"] and bank.identity_ids.tolist() == [0, 2]
    assert bank.episode_counts.tolist() == [[1], [2]] and bank.name_of(0) == "Ann"
    assert bank.face_anchors.tolist() == [0, 1, 2] and bank.next_id == 3 and bank.series_id == "r1"


def test_edits_of_other_outputs_are_named_not_applied(tmp_path: Path) -> None:
    from facepipe.app.curate import EDITS_FILE, other_edits_warning

    assert other_edits_warning(tmp_path, "run-2") is None
    log = EditLog(target="run-1", kind="run", edits=[_edit(1, "rename", id=0, name="Ann")])
    (tmp_path / EDITS_FILE).write_text(log.model_dump_json())
    assert other_edits_warning(tmp_path, "run-1") is None
    note = other_edits_warning(tmp_path, "run-2")
    assert note and "holds edits of earlier outputs (run run-1)" in note and "move it" in note
