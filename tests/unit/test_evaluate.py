"""facepipe.clustering.evaluate: the accuracy metrics, pinned on small examples computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facepipe.app.scores import evaluate_run
from facepipe.clustering.boxes import box_iou
from facepipe.clustering.evaluate import (
    bcubed_scores,
    evaluate,
    match_labels,
    pairwise_scores,
    people_counts,
    person_counts,
)

TRUTH = ["a", "a", "b", "b", "c"]

# Manning, Raghavan & Schuetze, "Introduction to Information Retrieval", section 16.3 (Fig. 16.4):
# three clusters of x / o / d(iamond) points; the book gives TP 20, FP 20, FN 24 for pairs.
IR_CLUSTERS = [["x"] * 5 + ["o"], ["x"] + ["o"] * 4 + ["d"], ["x"] * 2 + ["d"] * 3]
IR_PRED = [k for k, members in enumerate(IR_CLUSTERS) for _ in members]
IR_TRUTH = [label for members in IR_CLUSTERS for label in members]


def test_perfect_clustering_scores_one_whatever_the_identity_names() -> None:
    result = evaluate([7, 7, 3, 3, 9], TRUTH)
    assert result["pairwise"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert result["bcubed"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert (result["found"], result["true"], result["faces"], result["unlabelled"]) == (3, 3, 5, 0)


def test_all_in_one_cluster() -> None:
    # 10 pairs predicted together, 2 of them truly the same person
    pw = pairwise_scores([0] * 5, TRUTH)
    assert pw["precision"] == pytest.approx(2 / 10)
    assert pw["recall"] == 1.0
    assert pw["f1"] == pytest.approx(2 * 0.2 / 1.2)
    # BCubed precision: a and b faces 2/5 each, the c face 1/5
    bc = bcubed_scores([0] * 5, TRUTH)
    assert bc["precision"] == pytest.approx((4 * 2 / 5 + 1 / 5) / 5)
    assert bc["recall"] == 1.0
    assert bc["f1"] == pytest.approx(2 * 0.36 / 1.36)
    assert people_counts([0] * 5, TRUTH) == {"found": 1, "true": 3}


def test_all_singletons() -> None:
    pw = pairwise_scores([0, 1, 2, 3, 4], TRUTH)
    assert pw == {"precision": 1.0, "recall": 0.0, "f1": 0.0}  # no merge made: precision vacuously 1
    bc = bcubed_scores([0, 1, 2, 3, 4], TRUTH)
    assert bc["precision"] == 1.0
    assert bc["recall"] == pytest.approx((4 * 0.5 + 1.0) / 5)
    assert bc["f1"] == pytest.approx(2 * 0.6 / 1.6)
    assert people_counts([0, 1, 2, 3, 4], TRUTH) == {"found": 5, "true": 3}


def test_textbook_example_pairwise() -> None:
    pw = pairwise_scores(IR_PRED, IR_TRUTH)
    assert pw["precision"] == pytest.approx(20 / 40)
    assert pw["recall"] == pytest.approx(20 / 44)
    assert pw["f1"] == pytest.approx(2 * 0.5 * (20 / 44) / (0.5 + 20 / 44))


def test_textbook_example_bcubed() -> None:
    # per cell: n * n / |cluster| summed (precision) and n * n / |class| summed (recall), over 17
    precision = ((25 + 1) / 6 + (1 + 16 + 1) / 6 + (4 + 9) / 5) / 17
    recall = ((25 + 1 + 4) / 8 + (1 + 16) / 5 + (1 + 9) / 4) / 17
    bc = bcubed_scores(IR_PRED, IR_TRUTH)
    assert bc["precision"] == pytest.approx(precision)
    assert bc["recall"] == pytest.approx(recall)
    assert bc["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert people_counts(IR_PRED, IR_TRUTH) == {"found": 3, "true": 3}


def test_unknown_labels_are_excluded() -> None:
    pred = IR_PRED + [0, 1, 2, 99, 99]
    truth = IR_TRUTH + [None, "", None, None, None]
    assert evaluate(pred, truth)["pairwise"] == pairwise_scores(IR_PRED, IR_TRUTH)
    assert evaluate(pred, truth)["bcubed"] == bcubed_scores(IR_PRED, IR_TRUTH)
    result = evaluate(pred, truth)
    assert (result["faces"], result["unlabelled"], result["identities"], result["found"]) == (17, 5, 4, 3)


def test_nothing_labelled_and_length_mismatch() -> None:
    result = evaluate([0, 1], [None, None])
    assert result["pairwise"]["f1"] == result["bcubed"]["f1"] == 1.0
    assert (result["found"], result["true"]) == (0, 0)
    with pytest.raises(ValueError):
        evaluate([0, 1, 2], ["a", "b"])


def test_box_iou_and_label_matching() -> None:
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    labelled = [
        {"frame": 3, "bbox": [0, 0, 10, 10], "label": "a"},
        {"frame": 3, "bbox": [50, 0, 60, 10], "label": "b"},
        {"frame": 6, "bbox": [0, 0, 10, 10], "label": ""},
    ]
    faces = [
        {"frame": 3, "bbox": [51, 0, 61, 10]},
        {"frame": 3, "bbox": [1, 1, 10, 10]},
        {"frame": 6, "bbox": [0, 0, 10, 10]},
        {"frame": 9, "bbox": [0, 0, 10, 10]},
        {"frame": 3, "bbox": [25, 0, 35, 10]},
    ]
    assert match_labels(faces, labelled) == ["b", "a", None, None, None]


def test_evaluate_run_reads_faces_jsonl(tmp_path: Path) -> None:
    lines = [
        {"frame": 0, "bbox": [0, 0, 10, 10], "identity": 0},
        {"frame": 0, "bbox": [50, 0, 60, 10], "identity": 1},
        {"frame": 3, "bbox": [0, 0, 10, 10], "identity": 0},
        {"frame": 3, "bbox": [50, 0, 60, 10], "identity": 2},
    ]
    (tmp_path / "faces.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    aligned = evaluate_run(tmp_path, ["a", "b", "a", "b"])
    assert aligned["pairwise"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3)}
    assert (aligned["found"], aligned["true"]) == (3, 2)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([{**line, "label": "ab"[i % 2]} for i, line in enumerate(lines)]))
    assert evaluate_run(tmp_path, labels) == aligned
    merged = evaluate_run(tmp_path, labels, mapping={2: 1})
    assert merged["bcubed"]["f1"] == 1.0 and merged["found"] == 2


def test_a_split_person_counts_low_and_a_merged_pair_high() -> None:
    # "a": 30 faces, split 24 + 6; "b" (20) and "c" (5) merged into one identity
    predicted = ["x"] * 24 + ["y"] * 6 + ["z"] * 25
    truth = ["a"] * 30 + ["b"] * 20 + ["c"] * 5
    persons = person_counts(predicted, truth)
    assert persons["a"] == {"true": 30, "identity": "x", "found": 24, "error": 0.2}
    assert persons["b"] == {"true": 20, "identity": "z", "found": 25, "error": 0.25}
    assert persons["c"]["error"] == 4.0  # its main identity is b's
    scores = evaluate(predicted, truth)
    assert scores["worst_count_error"] == 0.25  # c has fewer than 20 labelled faces: left out
    assert evaluate(["x"] * 25, ["a"] * 25)["worst_count_error"] == 0.0
    assert evaluate([1, 2], [None, None])["persons"] == {}
