"""User-facing errors: the CLI prints the message (no traceback) and exits with code 2."""


class InputError(ValueError):
    """Bad user input; the message names the file/field and what was expected."""
