"""User-facing errors: the CLI prints them as one line and exits with code 2 (no traceback)."""


class GenasError(Exception):
    """Bad input or environment that the user can fix; the message says how."""

    exit_code = 2
