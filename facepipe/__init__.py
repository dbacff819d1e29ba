"""facepipe: turn video into a per-person bank of face embeddings and appearance counts.

The layers, bottom up (each package's ``__init__`` maps its modules; ``tests/unit/test_layers.py``
holds every import to this order):

* the base: :mod:`facepipe.errors` (the one error a user sees), :mod:`facepipe.settings`
  (every setting, declared once) and :mod:`facepipe.records` (the typed records that cross
  layers and processes);
* :mod:`facepipe.media`: probe, plan and read videos; images and frame signatures;
* :mod:`facepipe.inference`: the two models, their runtimes, alignment, and the detect and
  embed stages as plain functions;
* :mod:`facepipe.clustering`: from embedded faces to people (the writer's decision, tracks,
  the final pass, the series pass, accuracy), pure and replayable;
* :mod:`facepipe.distributed`: the Celery run: stages, messages, the Redis store, the
  ordered exactly-once writer, dispatch, the embedded default;
* :mod:`facepipe.app`: the command line, outputs, bank files, the report.

For use inside Python without Celery::

    from facepipe import Settings, process_video
    result = process_video("clip.mp4", Settings(frame_step=5))

and :func:`cluster_records` clusters chunk records you already have, as the writer would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from facepipe.app.process import ProcessedVideo, process_video
    from facepipe.clustering.run import cluster_records
    from facepipe.settings import Settings

#: public name -> the module that defines it, imported on first use so that ``import facepipe``
#: stays cheap for the workers (which never need the app)
_LAZY = {
    "process_video": "facepipe.app.process",
    "ProcessedVideo": "facepipe.app.process",
    "cluster_records": "facepipe.clustering.run",
    "Settings": "facepipe.settings",
}

__all__ = ["ProcessedVideo", "Settings", "__version__", "cluster_records", "process_video"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'facepipe' has no attribute {name!r}")
