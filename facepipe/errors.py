"""The one exception type a user is meant to see.

Anything raised as :class:`FacepipeError` is printed by the CLI as a single line
(what is wrong, what to do) with a non-zero exit; anything else is a bug.
"""


class FacepipeError(Exception):
    """A user-facing error whose message already says what to do."""


class ModelLoadError(FacepipeError):
    """A model that cannot be found or loaded (a wrong path, a bad file, no CUDA).

    For the CLI it is a one-line error like any other; a worker that meets it stops
    (the chunk goes back to the queue) instead of losing every chunk it is given.
    """
