"""``python -m facepipe``: the command line, as the ``facepipe`` script runs it."""

from facepipe.app.cli import entry

entry()
