"""Clustering accuracy against ground truth: pairwise and BCubed precision/recall/F1, people counts.

Pure functions over two equal-length sequences, one entry per face:

* ``predicted``: the identity each face was put in (any hashable);
* ``truth``: the person each face really is, or ``None`` (also ``""``) when unknown.

Faces whose true label is unknown are **excluded** before anything is computed: they
neither count as pairs nor weigh in a cluster's size. (They were still clustered, so
they can have pulled a centroid; that effect shows up in the labelled faces.)

Conventions for empty denominators (so that edge cases are well defined, not NaN):

* pairwise precision with no predicted same-cluster pair (all singletons) is 1.0 (no
  false merge was made), and pairwise recall with no true same-person pair is 1.0;
* F1 is ``2PR / (P + R)``, and 0.0 when ``P + R == 0``;
* with no labelled face at all every score is 1.0 and the counts are 0.

Definitions (``n`` labelled faces; ``C(i)`` the labelled faces in face ``i``'s predicted
cluster, ``L(i)`` those with face ``i``'s true label):

* pairwise: over all unordered pairs ``{i, j}``, ``P = |same cluster and same label| / |same
  cluster|``, ``R = |same cluster and same label| / |same label|``;
* BCubed (Bagga & Baldwin 1998; Amigo et al. 2009): ``P = mean_i |C(i) & L(i)| / |C(i)|``,
  ``R = mean_i |C(i) & L(i)| / |L(i)|`` (each face counts itself);
* ``found``: distinct predicted clusters among the labelled faces; ``true``: distinct labels;
* a person's **count error** (:func:`person_counts`): the person's *main identity* is the
  predicted cluster holding most of their faces; its count is its labelled faces (theirs and
  anybody else's), and the error is ``|count - true count| / true count``. A person split
  into splinters shows a count too low, two people merged a count too high: the error of the
  product's figure, faces per person, where F hides it among all faces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from facepipe.clustering.boxes import box_iou


def _known(
    predicted: Sequence[Hashable], truth: Sequence[Hashable | None]
) -> list[tuple[Hashable, Hashable]]:
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions but {len(truth)} labels")
    return [(p, t) for p, t in zip(predicted, truth, strict=True) if t is not None and t != ""]


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_scores(predicted: Sequence[Hashable], truth: Sequence[Hashable | None]) -> dict[str, float]:
    """Pairwise precision, recall and F1 over the labelled faces (see the module docstring)."""
    known = _known(predicted, truth)
    cells = Counter(known)
    same_both = sum(_pairs(n) for n in cells.values())
    same_pred = sum(_pairs(n) for n in Counter(p for p, _ in known).values())
    same_true = sum(_pairs(n) for n in Counter(t for _, t in known).values())
    precision = same_both / same_pred if same_pred else 1.0
    recall = same_both / same_true if same_true else 1.0
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def bcubed_scores(predicted: Sequence[Hashable], truth: Sequence[Hashable | None]) -> dict[str, float]:
    """BCubed precision, recall and F1 over the labelled faces (see the module docstring)."""
    known = _known(predicted, truth)
    if not known:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    cells = Counter(known)
    pred_sizes = Counter(p for p, _ in known)
    true_sizes = Counter(t for _, t in known)
    # every face in cell (p, t) scores the same, so sum per cell times its size
    precision = sum(n * n / pred_sizes[p] for (p, _), n in cells.items()) / len(known)
    recall = sum(n * n / true_sizes[t] for (_, t), n in cells.items()) / len(known)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def people_counts(predicted: Sequence[Hashable], truth: Sequence[Hashable | None]) -> dict[str, int]:
    """Distinct predicted clusters (``found``) and distinct true people (``true``) among labelled faces."""
    known = _known(predicted, truth)
    return {"found": len({p for p, _ in known}), "true": len({t for _, t in known})}


#: persons with fewer labelled faces than this are left out of ``worst_count_error`` (a 3-face
#: guest's count is one face off by 33%; the figure is about the people a count is for)
COUNT_ERROR_MIN_FACES = 20


def person_counts(
    predicted: Sequence[Hashable],
    truth: Sequence[Hashable | None],
    labelled: Mapping[Hashable, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per true person (by label, as text): ``true`` (labelled faces), ``identity`` (the main
    identity: most of their faces; ties to the first met), ``found`` (that identity's labelled
    faces) and ``error`` (``|found - true| / true``, rounded to 4 places).

    ``labelled`` gives each person's true count where the run may have missed labelled faces
    (``facepipe eval``: the labels of the frames the run sampled); by default it is the
    person's faces among ``truth``."""
    known = _known(predicted, truth)
    sizes = Counter(p for p, _ in known)
    cells = Counter(known)
    main: dict[Hashable, tuple[int, Hashable]] = {}
    for (identity, person), n in cells.items():
        if person not in main or n > main[person][0]:
            main[person] = (n, identity)
    out = {}
    for person, matched in Counter(t for _, t in known).items():
        true = max(matched, (labelled or {}).get(person, 0))
        identity = main[person][1]
        found = sizes[identity]
        out[str(person)] = {
            "true": true,
            "identity": identity,
            "found": found,
            "error": round(abs(found - true) / true, 4),
        }
    return out


def evaluate(
    predicted: Sequence[Hashable],
    truth: Sequence[Hashable | None],
    labelled: Mapping[Hashable, int] | None = None,
) -> dict[str, Any]:
    """Every metric at once: ``pairwise``, ``bcubed`` (dicts of P/R/F1), ``found``, ``true``,
    ``faces``, ``persons`` (:func:`person_counts`) and ``worst_count_error``.

    ``faces`` is the number of labelled faces scored; ``unlabelled`` the number excluded;
    ``identities`` the number of distinct predicted clusters over *all* faces;
    ``worst_count_error`` the largest count error among persons with at least
    :data:`COUNT_ERROR_MIN_FACES` labelled faces (0.0 when there are none). ``labelled``: see
    :func:`person_counts`.
    """
    known = _known(predicted, truth)
    persons = person_counts(predicted, truth, labelled)
    errors = [p["error"] for p in persons.values() if p["true"] >= COUNT_ERROR_MIN_FACES]
    return {
        "pairwise": pairwise_scores(predicted, truth),
        "bcubed": bcubed_scores(predicted, truth),
        **people_counts(predicted, truth),
        "faces": len(known),
        "unlabelled": len(predicted) - len(known),
        "identities": len(set(predicted)),
        "persons": persons,
        "worst_count_error": max(errors, default=0.0),
    }


def match_labels(
    faces: Sequence[Mapping[str, Any]], labelled: Sequence[Mapping[str, Any]], min_iou: float = 0.5
) -> list[Hashable | None]:
    """Give each face (``frame``, ``bbox``) the ``label`` of the labelled face in the same frame
    whose box overlaps it best with IoU >= ``min_iou``; ``None`` when there is none.

    Lets labels computed once (for example by ``bench/labelsets.py``) score any run of the
    same video, whatever order its faces come in.
    """
    by_frame: dict[int, list[Mapping[str, Any]]] = {}
    for item in labelled:
        by_frame.setdefault(int(item["frame"]), []).append(item)
    out: list[Hashable | None] = []
    for face in faces:
        best, best_iou = None, min_iou
        for item in by_frame.get(int(face["frame"]), ()):
            iou = box_iou(face["bbox"], item["bbox"])
            if iou >= best_iou:
                best, best_iou = item.get("label"), iou
        out.append(best if best != "" else None)
    return out
