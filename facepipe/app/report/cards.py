"""The "who is on screen, and when" section: one card per identity, or the no-faces notice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facepipe.app.report.controls import edit_controls, edits_panel
from facepipe.app.report.facts import RunFacts
from facepipe.app.report.formatting import esc, fmt_param, fmt_time
from facepipe.app.report.identities import Identity
from facepipe.app.report.timeline import LOST_FILL, axis, timeline
from facepipe.app.summary import Summary
from facepipe.clustering.screen import ScreenTime


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


def _appearances(seen: ScreenTime | None) -> str:
    """ ", in 3 shots, 5 appearances" from the summary's screen time (nothing for older summaries)."""
    if seen is None:
        return ""
    shots = "" if seen.shots is None else f", in {seen.shots} shot{'s' if seen.shots != 1 else ''}"
    n = len(seen.segments)
    return f"{shots}, {n} appearance{'s' if n != 1 else ''}"


def identity_card(
    ident: Identity, rank: int, run: RunFacts, name: str | None = None, seen: ScreenTime | None = None
) -> str:
    """One person's card: crops, name, face count, screen time and its share, first/last seen,
    shots and appearances, timeline, and the review controls."""
    screen = ident.count * run.step_s
    share = screen / run.duration if run.duration > 0 else 0.0
    times = [float(f.get("time_s", f["frame"] / run.fps)) for f in ident.faces]
    first = fmt_time(min(times)) if times else "-"
    last = fmt_time(max(times)) if times else "-"
    faces_text = "1 face" if ident.count == 1 else f"{ident.count:,} faces"
    strip = timeline(times, run.duration, run.step_s, ident.color, run.lost)
    title = esc(name) if name else f"Person {rank}"
    return f"""
<section class=id style="--c:{ident.color}" data-identity="{ident.id}">
  <div class=crops>{_thumbnail_strip(ident, run.fps)}</div>
  <div>
    <div class=who><h3><span class=dot></span>{title}</h3>
      <span class=muted>identity {ident.id} &middot; {faces_text}</span></div>
    <div><span class=big>{fmt_time(screen)}</span> on screen
      <span class=muted>&middot; {min(100.0, 100 * share):.1f}% of the video</span></div>
    <div class=facts>first seen at {first}, last at {last}{_appearances(seen)}{_match_text(ident.faces)}</div>
    {strip}
    {edit_controls(ident.id, name)}
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


def people_section(
    summary: Summary, run: RunFacts, identities: list[Identity], out_dir: Path | None = None
) -> str:
    """The legend, the time axis and every card in rank order; or the no-faces notice.

    Extras (identities with fewer than ``--min-faces`` faces: background people) follow the
    people, apart, under their own heading.
    """
    if not identities:
        return _no_faces(summary, run)
    extras = set(summary.extras)
    people = [ident for ident in identities if ident.id not in extras]
    background = [ident for ident in identities if ident.id in extras]

    def card(ident: Identity, rank: int) -> str:
        key = str(ident.id)
        return identity_card(ident, rank, run, summary.names.get(key), summary.screen_time.get(key))

    cards = "".join(card(ident, rank) for rank, ident in enumerate(people, 1))
    section = f"{_legend(run)}{axis(run.duration)}<div class=ids>{cards}</div>"
    if background:
        more = "".join(card(ident, rank) for rank, ident in enumerate(background, len(people) + 1))
        section += (
            f"<h2>Extras: {len(background)} background people</h2><p class=legend>Fewer than "
            f"{esc(run.params.get('min_faces'))} faces each (<code>--min-faces</code>); kept in every "
            f"output, flagged.</p><div class=ids>{more}</div>"
        )
    listing = [(ident.id, summary.names.get(str(ident.id))) for ident in identities]
    return section + edits_panel(out_dir, listing, summary.edits)
