"""facepipe inside Python, without Celery or Redis: one video, in this process.

::

    from facepipe import Settings, process_video

    result = process_video("ep1.mp4", Settings(frame_step=5))
    result.final.counts            # faces per identity (identities 0..K-1)
    result.final.centroids         # (K, 512) unit rows
    result.final.faces             # one FaceLine per kept face: frame, box, identity, track, ...
    result.write_bank("ep1.npz")   # the run bank file `facepipe run` writes

It runs the same stages as the workers (:func:`~facepipe.inference.chunk.detect_chunk`,
:func:`~facepipe.inference.chunk.embed_record`) over the same chunk plan, and the same
clustering as the writer (:func:`~facepipe.clustering.run.cluster_records`), so its identities
are those of ``facepipe run`` with the same settings. It uses one process: for speed on
several cores, or for a fleet, use ``facepipe run``. ``--save-images`` and the report are the
CLI's; the settings that configure workers and brokers are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from facepipe.app.banks import write_run_bank
from facepipe.clustering.final import FinalIdentities
from facepipe.clustering.run import cluster_records
from facepipe.distributed.dispatch import new_run_id
from facepipe.inference.chunk import detect_chunk, embed_record
from facepipe.inference.detector import FaceDetector
from facepipe.inference.embedder import FaceEmbedder
from facepipe.media.plan import plan
from facepipe.media.probe import probe
from facepipe.records import RunParams
from facepipe.settings import Settings


@dataclass
class ProcessedVideo:
    """One video's result: the parameters it was processed with and its final identities."""

    run_id: str
    params: RunParams
    final: FinalIdentities

    def write_bank(self, path: Path | str) -> Path:
        """The run bank file (``bank.npz``, see :mod:`facepipe.app.banks`)."""
        return write_run_bank(Path(path), self.final, self.params, self.run_id)


def process_video(
    video: str | os.PathLike[str],
    settings: Settings | None = None,
    *,
    detector: FaceDetector | None = None,
    embedder: FaceEmbedder | None = None,
    progress: bool = False,
) -> ProcessedVideo:
    """Sample, detect, align, embed and cluster one video in this process.

    ``settings`` defaults to :class:`~facepipe.settings.Settings` (which reads ``FACEPIPE_*``
    variables). Pass loaded ``detector``/``embedder`` to reuse them across videos. A bad video
    or setting raises :class:`~facepipe.errors.FacepipeError` with a one-line message.
    """
    settings = settings or Settings()
    info = probe(video)
    chunks = plan(info, settings.decoder, settings.frame_step, settings.chunk_size)
    params = RunParams.build(settings, replace(info, frame_count=chunks.frame_count), chunks.decoder)
    model = (settings.ort_threads, settings.providers, settings.backend, settings.precision)
    detector = detector or FaceDetector.from_settings(settings.det_model, *model)
    embedder = embedder or FaceEmbedder.from_settings(settings.rec_model, *model)
    bar = tqdm(chunks.chunks, unit="chunk", desc=Path(info.path).name, disable=not progress)
    records = (embed_record(detect_chunk(c, params, detector), embedder, keep_crops=False) for c in bar)
    return ProcessedVideo(new_run_id(), params, cluster_records(records, params))
