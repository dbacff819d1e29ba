"""The one exception type a user is meant to see.

Anything raised as :class:`FacepipeError` is printed by the CLI as a single line
(what is wrong, what to do) with a non-zero exit; anything else is a bug.
"""


class FacepipeError(Exception):
    """A user-facing error whose message already says what to do."""
