"""The one user-facing error type, shared by every layer (the runtime owns it; model and exporter import it).

A :class:`FrptError` is a user error: the CLIs print its message as one line and exit non-zero, with no
traceback unless ``--debug``. Anything else escaping is a bug.
"""


class FrptError(Exception):
    """A user error with a one-line message that names the fix."""
