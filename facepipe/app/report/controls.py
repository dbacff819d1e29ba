"""The review controls on the person cards, and the panel that turns them into a command.

Each card offers "same as…" (another identity of the page), a name and "not a face"; the
page's script (``assets/report.js``) turns every choice into one ``facepipe edit OUT ...``
command, shown in the panel at the end of the people, to copy and run: the page itself
writes nothing (it is a file, and may be opened anywhere). The command is the one
``facepipe edit --help`` documents, so pasting it makes exactly the edit chosen.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from facepipe.app.report.formatting import esc


def edit_controls(identity: int, name: str | None) -> str:
    """One card's controls; the script fills "same as…" with the page's other identities."""
    return f"""<div class=edit data-id="{identity}">
      <label>same as <select class=fp-merge aria-label="identity {identity} is the same person as">
        <option value="">&hellip;</option></select></label>
      <label>name <input class=fp-rename type=text value="{esc(name or "")}"
        data-current="{esc(name or "")}" placeholder="name" aria-label="name of identity {identity}"></label>
      <label><input class=fp-noface type=checkbox> not a face</label>
    </div>"""


def edits_panel(out_dir: Path | None, people: list[tuple[int, str | None]], applied: list[str]) -> str:
    """The panel: the command the choices make, a copy button, and the edits in effect."""
    listing = [{"id": identity, "name": name or ""} for identity, name in people]
    data = orjson.dumps(listing).decode().replace("</", "<\\/")
    folder = str(Path(out_dir).resolve()) if out_dir else ""
    done = ""
    if applied:
        items = "".join(f"<li>{esc(text)}</li>" for text in applied)
        done = (
            f"<p class=legend>Edits in effect (<code>facepipe edit OUT</code> lists them; "
            f"<code>--undo N</code> takes one back):</p><ol class=done>{items}</ol>"
        )
    return f"""<section class=fpedits id=fp-edits>
  <h2>Review: your corrections</h2>
  <p class=legend>On the cards above, choose &ldquo;same as&hellip;&rdquo;, type a name or tick
  &ldquo;not a face&rdquo;. This page changes nothing itself: run the command below, and every
  output (this page included) is rewritten with the edits, which later <code>--bank</code> runs keep.</p>
  <pre id=fp-command data-out="{esc(folder)}">no corrections chosen yet</pre>
  <button id=fp-copy type=button>Copy the command</button> <span id=fp-copied class=muted></span>
  {done}
  <script type="application/json" id=fp-people>{data}</script>
</section>"""
