"""The distributed run: chunks as Celery tasks, one writer, Redis as the run's store.

* :mod:`~facepipe.distributed.stages`: the pipeline's shape, declared once (stages, task
  names, queues);
* :mod:`~facepipe.distributed.messages`: the three task messages;
* :mod:`~facepipe.distributed.bridge`: the one module that imports Celery (the app, the
  sender, the worker command);
* :mod:`~facepipe.distributed.store`: the run's Redis keys, their one layout; retention, the
  dispatcher's lease, the broker's memory;
* :mod:`~facepipe.distributed.writer`: the writer's ordered, exactly-once commits, and the
  final pass over what it persisted;
* :mod:`~facepipe.distributed.dispatch`: record a run, send its chunks, follow it (riding out a
  broker outage or a full broker), and what a resumed run sends again;
* :mod:`~facepipe.distributed.embedded`: the embedded default's private server and workers.

May import: the base, :mod:`facepipe.media`, :mod:`facepipe.inference` and
:mod:`facepipe.clustering`. The Celery tasks themselves are thin wrappers in ``tasks/``.
"""
