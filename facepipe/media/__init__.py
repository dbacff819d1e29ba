"""Media: the video and image layer. From a file (or URL) to the sampled frames' pixels.

* :mod:`~facepipe.media.probe`: open a video and read its frame count, rate and size;
* :mod:`~facepipe.media.plan`: cut a run's video into chunks (whole GOPs, or frame ranges);
* :mod:`~facepipe.media.readers`: read one chunk's sampled frames (or the shipped ones);
* :mod:`~facepipe.media.keyframes`: PyAV keyframe index and decoding from keyframes;
* :mod:`~facepipe.media.fetch`: an http(s) video copied once per host;
* :mod:`~facepipe.media.blur`: the blur gate (before detection);
* :mod:`~facepipe.media.signature`: a sampled frame's shot signature;
* :mod:`~facepipe.media.images`: image codecs, the square crop and the face thumbnail;
* :mod:`~facepipe.media.samples`: a demo video built from InsightFace's sample photo.

May import: :mod:`facepipe.errors`, :mod:`facepipe.settings`, :mod:`facepipe.records`, and
nothing else of facepipe (``tests/unit/test_layers.py`` holds every layer to its map).
"""
