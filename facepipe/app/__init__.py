"""The app: what a user runs and what a run leaves behind.

* :mod:`~facepipe.app.cli`: the ``facepipe`` command line (flags from the settings);
* :mod:`~facepipe.app.runner`: ``facepipe run``: validate, dispatch, follow, write outputs;
* :mod:`~facepipe.app.resume`: ``facepipe resume RUN_ID``: finish a run whose dispatcher is gone;
* :mod:`~facepipe.app.process`: :func:`process_video`, one video in this process, no Celery;
* :mod:`~facepipe.app.episodes`: several videos as a season, and where each one's outputs go;
* :mod:`~facepipe.app.admin`: ``status``, ``runs``, ``delete``, ``report RUN_ID`` on a broker;
* :mod:`~facepipe.app.outputs`: a finished run's files and the summary printed at the end;
* :mod:`~facepipe.app.summary`: ``summary.json``, typed;
* :mod:`~facepipe.app.banks`: the run bank and series bank files;
* :mod:`~facepipe.app.series_outputs`: a season's outputs in ``OUT/series/``;
* :mod:`~facepipe.app.scores`: ``facepipe eval``;
* :mod:`~facepipe.app.curate`: ``facepipe edit``: a person's edits (``edits.json``) applied to every
  output of a run or a season;
* :mod:`~facepipe.app.naming`: ``facepipe name`` (names from reference photos) and ``facepipe find``;
* :mod:`~facepipe.app.files`: writing a file so that no reader sees half of it;
* :mod:`~facepipe.app.report`: ``report.html``.

May import every layer below it.
"""
