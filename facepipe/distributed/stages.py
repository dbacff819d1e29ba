"""The pipeline's shape, declared once: its stages, their Celery task names and queues.

``celeryconfig.py`` builds its routes from :data:`STAGES`, the task decorators take their
names from it, the dispatcher sends to :data:`DETECT`, each task hands its result to the
next stage by name, and the embedded default starts one worker per :data:`QUEUES` entry.

::

    dispatcher --DetectMessage--> detect --EmbedMessage--> embed --WriteMessage--> write
      (queue detect, any number)    (queue embed, any number)   (queue writer, exactly one)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from facepipe.distributed.messages import TaskMessage


@dataclass(frozen=True)
class Stage:
    name: str
    #: the Celery task name workers register and senders address
    task: str
    queue: str
    #: the model a worker of this queue loads at start-up (FACEPIPE_PRELOAD), if any
    model: str | None
    #: whether a deployment may run several processes of this queue
    scalable: bool


DETECT = Stage("detect", "facepipe.detect", "detect", "detector", scalable=True)
EMBED = Stage("embed", "facepipe.embed", "embed", "embedder", scalable=True)
WRITE = Stage("write", "facepipe.write", "writer", None, scalable=False)

STAGES = (DETECT, EMBED, WRITE)
QUEUES = tuple(stage.queue for stage in STAGES)
ROUTES = {stage.task: {"queue": stage.queue} for stage in STAGES}

#: how the library hands a message to a stage (a Celery sender in production, see
#: :mod:`facepipe.distributed.bridge`; any callable in a test)
Send = Callable[[Stage, TaskMessage], None]
