class GramkdError(Exception):
    """A problem with the user's input or setup, reported as one line, never a traceback."""
