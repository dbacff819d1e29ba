"""The identity table: the writer's online identities, and how a face joins one or founds one.

This is the seed's algorithm, kept exactly:

* cosine similarity of the (unit) face embedding to every identity centroid;
* at or above ``sim_thresh`` the face joins the most similar identity: ``count + 1``,
  and while ``refine_count < refine_limit`` the centroid becomes the renormalised
  running mean ``normalise((centroid * refine_count + embedding) / (refine_count + 1))``
  and ``refine_count + 1``;
* otherwise a new identity starts with ``embedding = centroid = face``,
  ``refine_count = count = 1``.

The table keeps all centroids in one preallocated float32 matrix so a match is a single
matrix-vector product, whatever the number of identities. It lives in Redis between chunks as
``K:ident:ID`` hashes (:meth:`facepipe.distributed.store.RunStore.load_identities`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facepipe.records import DIM


@dataclass(frozen=True)
class Match:
    """Where a face went: its identity id and the similarity that placed it (None = founded)."""

    identity: int
    similarity: float | None


def normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)


class IdentityTable:
    """All identities of one run, in memory, in founding order (id = row)."""

    def __init__(self, dim: int = DIM, capacity: int = 64) -> None:
        self.dim = dim
        self._centroids = np.zeros((capacity, dim), dtype=np.float32)
        self.embeddings: list[np.ndarray] = []
        self.refine_counts: list[int] = []
        self.counts: list[int] = []

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def centroids(self) -> np.ndarray:
        return self._centroids[: len(self)]

    def add(self, embedding: np.ndarray, centroid: np.ndarray, refine_count: int, count: int) -> int:
        """Append an identity (also used to reload the table from storage)."""
        n = len(self)
        if n == self._centroids.shape[0]:
            grown = np.zeros((2 * n, self.dim), dtype=np.float32)
            grown[:n] = self._centroids[:n]
            self._centroids = grown
        self._centroids[n] = centroid
        self.embeddings.append(np.asarray(embedding, dtype=np.float32))
        self.refine_counts.append(int(refine_count))
        self.counts.append(int(count))
        return n

    def row(self, identity: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Identity ``identity`` as stored: (embedding, centroid copy, refine_count, count)."""
        return (
            self.embeddings[identity],
            self._centroids[identity].copy(),
            self.refine_counts[identity],
            self.counts[identity],
        )

    def match_or_add(self, embedding: np.ndarray, sim_thresh: float, refine_limit: int) -> Match:
        """Place one unit embedding; mutates the table and returns where it went."""
        embedding = np.asarray(embedding, dtype=np.float32)
        if len(self):
            sims = self.centroids @ embedding
            best = int(np.argmax(sims))
            similarity = float(sims[best])
            if similarity >= sim_thresh:
                self._merge(best, embedding, refine_limit)
                return Match(best, similarity)
        return Match(self.add(embedding, embedding, 1, 1), None)

    def join(self, identity: int, embedding: np.ndarray, refine_limit: int, refine: bool = True) -> Match:
        """Add a face known to be ``identity`` (it continues that identity's face track): count + 1,
        and the centroid moves unless ``refine`` is False (a suspect face must not pull it)."""
        embedding = np.asarray(embedding, dtype=np.float32)
        similarity = float(self._centroids[identity] @ embedding)
        if refine:
            self._merge(identity, embedding, refine_limit)
        else:
            self.counts[identity] += 1
        return Match(identity, similarity)

    def _merge(self, identity: int, embedding: np.ndarray, refine_limit: int) -> None:
        self.counts[identity] += 1
        refined = self.refine_counts[identity]
        if refined < refine_limit:
            mean = (self._centroids[identity] * refined + embedding) / (refined + 1)
            self._centroids[identity] = normalise(mean)
            self.refine_counts[identity] = refined + 1
