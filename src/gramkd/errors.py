class GramkdError(Exception):
    """A problem with the user's input or setup, reported as one line, never a traceback."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
