"""The harness behind ``bench/run.py``: the plain loop (A) against ``facepipe run`` configurations.

``bench/run.py`` only parses the command line and calls :func:`harness.bench.run`. One job
per module:

* :mod:`~harness.bench`: one bench session: the video, the code, then the rounds or the episode
  runs, the results file and the printed tables;
* :mod:`~harness.rounds`: the default mode: rounds of A and every contender, the untimed
  reference runs, the instrumented run, the results as one dict;
* :mod:`~harness.episode`: ``--episode``: one run each on a long video, with stage times and
  memory over time, and its table;
* :mod:`~harness.contenders`: the configurations (``NAME[@REV]=FLAGS``), the code each runs (a
  snapshot of the working tree, or a git revision's), and one run of A or of a contender;
* :mod:`~harness.procs`: one timed subprocess, its process tree sampled from ``/proc`` (peak
  RSS and PSS, CPU per role, the memory timeline) and the rest of the machine's load;
* :mod:`~harness.probes`: what is read from a run's embedded server while it runs: milestones
  (polled) and the ``MONITOR`` command log (message bytes, stage sums, writer time);
* :mod:`~harness.faces`: two runs' faces compared, face by face and by face-level agreement;
* :mod:`~harness.sizes`: a chunk record's size, from ``detect_chunk``/``embed_record`` in this
  process;
* :mod:`~harness.report`: aggregates over rounds and the markdown tables.

Imported with ``bench/`` on ``sys.path`` (as the bench scripts run); ``facepipe`` is imported
only inside the functions that need it, so a run can put a snapshot of the code first.
"""

from pathlib import Path

#: the bench folder and the repository root
BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
