"""Shots, face tracks and the final pass over tracks: the pure parts of ``--clustering tracks``."""

from __future__ import annotations

import cv2
import numpy as np

from facepipe.clustering.decide import RunState, decide
from facepipe.clustering.identity import IdentityTable
from facepipe.clustering.people import cluster_tracks
from facepipe.clustering.shots import is_cut
from facepipe.clustering.tracks import Tracker, link
from facepipe.media.samples import insightface_image
from facepipe.media.signature import frame_signature
from facepipe.records import (
    DIM,
    ChunkRecord,
    DetectedFace,
    FrameSignature,
    RunParams,
    TrackStateRecord,
    VideoInfo,
)
from facepipe.settings import Settings

RNG = np.random.default_rng(5)
PEOPLE = RNG.normal(size=(4, DIM)).astype(np.float32)
PEOPLE /= np.linalg.norm(PEOPLE, axis=1, keepdims=True)


def _face(person: int, noise: float = 0.5) -> np.ndarray:
    v = PEOPLE[person] + noise * RNG.normal(size=DIM).astype(np.float32) / np.sqrt(DIM)
    return v / np.linalg.norm(v)


def _signature(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frame's signature as the writer sees it: through the record's JSON encoding."""
    return FrameSignature.of(0, *frame_signature(image)).arrays()


def test_a_cut_is_a_change_of_picture_not_of_position() -> None:
    t1 = insightface_image("t1.jpg")
    panned = cv2.warpAffine(
        t1, np.float32([[1, 0, 12], [0, 1, 6]]), t1.shape[1::-1], borderMode=cv2.BORDER_REPLICATE
    )
    other = cv2.resize(insightface_image("Tom_Hanks_54745.png"), t1.shape[1::-1])
    a, b, d = (_signature(x) for x in (t1, panned, other))
    assert not is_cut(*a, *b)
    assert is_cut(*a, *d) and is_cut(*d, *a)
    black = np.zeros_like(t1)
    assert is_cut(*a, *_signature(black))  # a fade to black: the palette decides


def test_link_is_greedy_one_to_one_and_needs_overlap_and_agreement() -> None:
    boxes = np.array([[0, 0, 100, 100], [200, 0, 300, 100]], np.float32)
    prev = np.array([[5, 5, 105, 105], [600, 0, 700, 100]], np.float32)
    same = np.stack([_face(0), _face(1)])
    prev_emb = np.stack([_face(0), _face(1)])
    assert link(boxes, same, prev, prev_emb).tolist() == [0, -1]  # the second box moved away
    # strong overlap, weak agreement (a profile of the same person): only the second tier links
    turned = np.stack([(0.25 * PEOPLE[0] + RNG.normal(size=DIM) / np.sqrt(DIM) * 0.97), _face(1)])
    turned /= np.linalg.norm(turned, axis=1, keepdims=True)
    assert 0.15 <= float(turned[0] @ prev_emb[0]) < 0.4
    assert link(boxes, turned, prev, prev_emb, second_tier=True).tolist() == [0, -1]
    assert link(boxes, turned, prev, prev_emb, second_tier=False).tolist() == [-1, -1]
    # another person in the same place never continues the track
    assert link(boxes[:1], _face(2)[None], prev[:1], prev_emb[:1]).tolist() == [-1]


def _frames(cut_at: int, count: int = 6) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Sampled frames (step 2) of a shot of t1.jpg, then from ``cut_at`` on a shot of Tom Hanks."""
    t1 = insightface_image("t1.jpg")
    other = cv2.resize(insightface_image("Tom_Hanks_54745.png"), t1.shape[1::-1])
    return [(2 * k, *_signature(t1 if k < cut_at else other)) for k in range(count)]


def test_tracks_continue_within_a_shot_and_break_at_a_cut_or_a_gap() -> None:
    tracker = Tracker(frame_step=2)
    box = np.array([[10, 10, 90, 110]], np.float32)
    got = []
    for frame, hist, thumb in _frames(cut_at=3):
        tracks, _, cut = tracker.step(frame, hist, thumb, box, _face(0)[None])
        got.append((int(tracks[0]), cut))
    assert got == [(0, False), (0, False), (0, False), (1, True), (1, False), (1, False)]
    assert tracker.shot == 1
    frame, hist, thumb = _frames(cut_at=3)[-1]
    tracks, _, cut = tracker.step(frame + 4, hist, thumb, box, _face(0)[None])  # a sampled frame missing
    assert cut and tracks.tolist() == [2]


def test_a_blur_skipped_frame_keeps_the_tracks_open() -> None:
    tracker = Tracker(frame_step=1)
    (f0, h, t), *_ = _frames(cut_at=99)
    box = np.array([[10, 10, 90, 110]], np.float32)
    assert tracker.step(0, h, t, box, _face(0)[None])[0].tolist() == [0]
    assert tracker.step(1, h, t, box[:0], np.zeros((0, DIM)), skipped=True)[0].tolist() == []
    assert tracker.step(2, h, t, box, _face(0)[None])[0].tolist() == [0]


def _chunk(
    seq: int, frames: list[tuple[int, np.ndarray, np.ndarray]], people: list[list[int]]
) -> ChunkRecord:
    record = ChunkRecord(seq=seq, start=frames[0][0], stop=frames[-1][0] + 1, step=2)
    embeddings = []
    for (frame, hist, thumb), who in zip(frames, people, strict=True):
        record.signatures.append(FrameSignature.of(frame, hist, thumb))
        for n, person in enumerate(who):
            x = 20.0 + 300 * n
            record.faces.append(
                DetectedFace(
                    frame=frame,
                    index=n,
                    bbox=[x, 10, x + 80, 110],
                    det_score=0.9,
                    aligned=True,
                    crop_mean=90.0,
                    emb_norm=21.0,
                )
            )
            embeddings.append(_face(person))
    record.set_embeddings(np.array(embeddings, np.float32).reshape(-1, DIM))
    return record


def test_tracks_across_chunk_boundaries_equal_one_big_chunk() -> None:
    params = RunParams.build(Settings(frame_step=2), VideoInfo("/v.mp4", 100, 10.0, 640, 480))
    frames = _frames(cut_at=4, count=8)
    people = [[0, 1], [0, 1], [0, 1], [0, 1], [2], [2, 3], [2, 3], [3]]

    def run(size: int) -> list[tuple[int, int, int]]:
        """Chunks of ``size`` sampled frames; the tracker goes through JSON between them, as the
        writer stores and reloads it."""
        bank, stored, lines = IdentityTable(), None, []
        for seq, start in enumerate(range(0, len(frames), size)):
            tracker = Tracker(2) if stored is None else Tracker.from_record(stored, 2)
            record = _chunk(seq, frames[start : start + size], people[start : start + size])
            commit = decide(RunState(bank, tracker), record, params)
            stored = TrackStateRecord.model_validate_json(commit.tracker.to_json())
            lines += [(line.identity, line.track, line.shot) for line in commit.lines]
        return lines

    whole = run(8)
    assert run(1) == run(3) == whole
    tracks = [t for _, t, _ in whole]
    assert tracks == [0, 1, 0, 1, 0, 1, 0, 1, 2, 2, 3, 2, 3, 4]  # the last face moved: a new track
    assert {s for _, _, s in whole} == {0, 1}


def test_cluster_tracks_joins_tracks_keeps_cooccurring_apart_and_rejects_lonely_suspects() -> None:
    # tracks 0 and 2 are person 0 (different shots); track 1 is person 1, in frames with track 0;
    # track 3 is a suspect blob nobody resembles; track 4 is a suspect face of person 1 (a dark shot)
    tracks = [0, 1, 0, 1, 2, 2, 3, 4]
    frames = [0, 0, 1, 1, 10, 11, 20, 30]
    emb = np.stack([_face(0), _face(1), _face(0), _face(1), _face(0), _face(0), _face(3), _face(1)])
    suspect = [False, False, False, False, False, False, True, True]
    labels = cluster_tracks(tracks, frames, emb, suspect, 0.25)
    assert labels.tolist() == [0, 1, 0, 1, 0, 0, -1, 1]
    assert cluster_tracks(tracks, frames, emb, suspect, 0.0).tolist() == [
        0,
        1,
        0,
        1,
        2,
        2,
        -1,
        -1,
    ]  # merging off
