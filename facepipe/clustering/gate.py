"""The false-face gate: detections that may not be faces at all.

SCRFD sometimes finds a "face" in a barely lit blob (the debate clip's dark corner). Such a
detection is *suspect* when its aligned crop is dark and the recogniser is unsure of it; the
final pass (:func:`facepipe.clustering.people.cluster_tracks`) lets a track of suspect faces
join a person it matches, and rejects it otherwise.
"""

from __future__ import annotations

#: an aligned face crop darker than this (mean grey level) may be no face at all...
DARK_CROP = 20.0
#: ...when the recogniser is also unsure of it (raw ArcFace output norm below this)
UNSURE_NORM = 15.0


def is_suspect(crop_mean: float | None, emb_norm: float | None) -> bool:
    """The false-face test: a dark crop the recogniser is unsure of.

    Neither half is enough alone (measured on every label set): real faces in an eighth of
    the light are as dark as the debate's false faces, and a real profile close-up is as
    uncertain; only false faces are both. The writer applies it per track, so a real dark
    face is kept when its track also has a good face, or when the track joins a person.
    """
    if crop_mean is None or emb_norm is None:
        return False
    return crop_mean < DARK_CROP and emb_norm < UNSURE_NORM
