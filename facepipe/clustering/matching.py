"""Who is who: identities against reference photos (``facepipe name``) and a photo against a bank
(``facepipe find``). Pure: embeddings in, decisions out.

An identity's score for a name is the cosine between its centroid (the normalised mean of its
faces) and the normalised mean of that name's reference embeddings. Averaging both sides
keeps one odd frame or one odd photo from deciding. Measured on the shared clips (a season of
hamilton, the call and the dance at frame step 3; README, "Review and name"): the seven people
with a photo score 0.29 to 0.94 against their own photo (the lowest: Alex Lacamoire, four small
faces), every other identity at most 0.19 against any photo, so :data:`MATCH_THRESH` sits
between the two and :data:`MATCH_MARGIN` asks the best name to stand clear of the second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from facepipe.settings import MATCH_MARGIN, MATCH_THRESH

__all__ = ["MATCH_MARGIN", "MATCH_THRESH", "NameMatch", "decide_names", "name_scores", "rank_people"]


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def name_scores(centroids: np.ndarray, references: list[np.ndarray]) -> np.ndarray:
    """(identities, names): cosine of each centroid to each name's mean reference embedding."""
    if not len(references):
        return np.zeros((len(centroids), 0))
    means = unit(np.stack([unit(r).mean(axis=0) for r in references]))
    return unit(centroids) @ means.T


@dataclass(frozen=True)
class NameMatch:
    """What the reference photos say about one identity."""

    identity: int
    verdict: Literal["named", "ambiguous", "unknown"]
    #: the best name (None without any reference) and its score
    name: str | None
    score: float
    #: the second-best name and its score (None with one name only)
    runner_up: str | None = None
    runner_up_score: float | None = None

    def evidence(self) -> str:
        second = f"; next {self.runner_up} {self.runner_up_score:.2f}" if self.runner_up is not None else ""
        return f"cosine {self.score:.2f}{second}"


def decide_names(
    identities: list[int], scores: np.ndarray, names: list[str], thresh: float, margin: float
) -> list[NameMatch]:
    """Each identity is **named** when its best name scores at least ``thresh`` and leads the
    second by at least ``margin``; **ambiguous** when it reaches ``thresh`` without that lead;
    **unknown** otherwise."""
    found = []
    for row, identity in enumerate(identities):
        if not names:
            found.append(NameMatch(identity, "unknown", None, 0.0))
            continue
        order = np.argsort(-scores[row], kind="stable")
        best = int(order[0])
        second = int(order[1]) if len(order) > 1 else None
        s1 = float(scores[row, best])
        s2 = float(scores[row, second]) if second is not None else None
        if s1 < thresh:
            verdict: Literal["named", "ambiguous", "unknown"] = "unknown"
        elif s2 is not None and s1 - s2 < margin:
            verdict = "ambiguous"
        else:
            verdict = "named"
        found.append(
            NameMatch(
                identity,
                verdict,
                names[best],
                round(s1, 4),
                names[second] if second is not None else None,
                round(s2, 4) if s2 is not None else None,
            )
        )
    return found


def rank_people(query: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine of the query embedding to every centroid (a face against a bank)."""
    if not len(centroids):
        return np.zeros(0)
    return unit(centroids) @ unit(np.asarray(query).reshape(-1))
