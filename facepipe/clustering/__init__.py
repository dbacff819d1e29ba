"""Clustering: from embedded faces to people. Pure functions and small classes, no I/O.

Per chunk, in video order (the writer's decision, :mod:`~facepipe.clustering.decide`):

* :mod:`~facepipe.clustering.identity`: the identity table, online match-or-add (the seed's rule);
* :mod:`~facepipe.clustering.shots`: the cut test between two frames' signatures;
* :mod:`~facepipe.clustering.tracks`: face tracks within shots, with :mod:`~facepipe.clustering.boxes`' IoU;
* :mod:`~facepipe.clustering.gate`: the false-face test;

after the run (the final pass, :mod:`~facepipe.clustering.final`):

* :mod:`~facepipe.clustering.people`: tracks, or online identities, joined into people;
* :mod:`~facepipe.clustering.linkage`: sparse exact average linkage with cannot-links;

and around them:

* :mod:`~facepipe.clustering.run`: :func:`cluster_records`, all of the above in one process;
* :mod:`~facepipe.clustering.series`: a season's episodes joined into one series bank;
* :mod:`~facepipe.clustering.screen`: screen time, shares, shots and appearance segments;
* :mod:`~facepipe.clustering.curation`: what a person's edit means (merge, rename, not a face,
  split, undo), replayed on the machine's identities;
* :mod:`~facepipe.clustering.matching`: identities against reference photos, a photo against a bank;
* :mod:`~facepipe.clustering.evaluate`: accuracy against labels (BCubed, pairwise, counts).

May import: the base (:mod:`facepipe.errors`, :mod:`facepipe.settings`,
:mod:`facepipe.records`) only, so every decision can be tested and replayed without a video,
a model or a server.
"""

from facepipe.clustering.run import cluster_records

__all__ = ["cluster_records"]
