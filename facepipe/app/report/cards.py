"""The "who is on screen, and when" section: one card per identity, or the no-faces notice."""

from __future__ import annotations

from typing import Any

from facepipe.app.report.facts import RunFacts
from facepipe.app.report.formatting import esc, fmt_param, fmt_time
from facepipe.app.report.identities import Identity
from facepipe.app.report.timeline import LOST_FILL, axis, timeline
from facepipe.app.summary import Summary


def _thumbnail_strip(ident: Identity, fps: float) -> str:
    """The identity's crops; one wide placeholder when the video gave none at all.

    A single wide notice instead of four "no crop" boxes when nothing could be read: the
    cause is the video, not this person, and the banner above says so.
    """
    if ident.thumbnails and not any(uri for _, uri in ident.thumbnails):
        return "<div class='ph wide'>no face crops: the video could not be read</div>"
    crops = []
    for face, uri in ident.thumbnails:
        title = (
            f"frame {face['frame']} at {fmt_time(face['frame'] / fps)}, "
            f"score {float(face.get('det_score') or 0):.2f}"
        )
        if uri:
            crops.append(f'<img src="{uri}" alt="identity {ident.id}, {esc(title)}" title="{esc(title)}">')
        else:
            crops.append(f'<div class=ph title="{esc(title)}">no crop<br>(video unavailable)</div>')
    return "".join(crops) or "<div class=ph>no crop</div>"


def _match_text(faces: list[dict[str, Any]]) -> str:
    """The mean similarity of the faces matched to the identity (its first face has none)."""
    sims = [f["similarity"] for f in faces if f.get("similarity") is not None]
    return f" &middot; mean match similarity {sum(sims) / len(sims):.2f}" if sims else ""


def identity_card(ident: Identity, rank: int, run: RunFacts) -> str:
    """One person's card: crops, face count, screen time and its share, first/last seen, timeline."""
    screen = ident.count * run.step_s
    share = screen / run.duration if run.duration > 0 else 0.0
    times = [float(f.get("time_s", f["frame"] / run.fps)) for f in ident.faces]
    first = fmt_time(min(times)) if times else "-"
    last = fmt_time(max(times)) if times else "-"
    faces_text = "1 face" if ident.count == 1 else f"{ident.count:,} faces"
    strip = timeline(times, run.duration, run.step_s, ident.color, run.lost)
    return f"""
<section class=id style="--c:{ident.color}" data-identity="{ident.id}">
  <div class=crops>{_thumbnail_strip(ident, run.fps)}</div>
  <div>
    <div class=who><h3><span class=dot></span>Person {rank}</h3>
      <span class=muted>identity {ident.id} &middot; {faces_text}</span></div>
    <div><span class=big>{fmt_time(screen)}</span> on screen
      <span class=muted>&middot; {min(100.0, 100 * share):.1f}% of the video</span></div>
    <div class=facts>first seen at {first}, last at {last}{_match_text(ident.faces)}</div>
    {strip}
  </div>
</section>"""


def _legend(run: RunFacts) -> str:
    lost = f"; <i style='background:{LOST_FILL}'></i>lost frames (not searched)" if run.lost else ""
    return (
        "<div class=legend>Most screen time first. Each strip spans the whole video; a coloured "
        f"mark is a stretch where that person's face was found{lost}</div>"
    )


def _no_faces(summary: Summary, run: RunFacts) -> str:
    """Says how hard it looked, so an empty result can be told apart from a broken run."""
    return (
        "<div class=empty><b>No faces were found in this video.</b>"
        f"<span class=muted>{summary.frames_sampled:,} sampled frames were searched "
        f"(detection threshold {fmt_param(run.params.get('det_thresh'))}, faces narrower than "
        f"{fmt_param(run.params.get('min_face'))} px ignored).</span></div>"
    )


def people_section(summary: Summary, run: RunFacts, identities: list[Identity]) -> str:
    """The legend, the time axis and every card in rank order; or the no-faces notice.

    Extras (identities with fewer than ``--min-faces`` faces: background people) follow the
    people, apart, under their own heading.
    """
    if not identities:
        return _no_faces(summary, run)
    extras = set(summary.extras)
    people = [ident for ident in identities if ident.id not in extras]
    background = [ident for ident in identities if ident.id in extras]
    cards = "".join(identity_card(ident, rank, run) for rank, ident in enumerate(people, 1))
    section = f"{_legend(run)}{axis(run.duration)}<div class=ids>{cards}</div>"
    if background:
        more = "".join(
            identity_card(ident, rank, run) for rank, ident in enumerate(background, len(people) + 1)
        )
        section += (
            f"<h2>Extras: {len(background)} background people</h2><p class=legend>Fewer than "
            f"{esc(run.params.get('min_faces'))} faces each (<code>--min-faces</code>); kept in every "
            f"output, flagged.</p><div class=ids>{more}</div>"
        )
    return section
