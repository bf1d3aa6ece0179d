"""Errors that reach users as one line and a non-zero exit."""

import sys

USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """Bad input or an unmet requirement the user can fix; the message says what and how."""


class ModelUnavailableError(UserError):
    """Diffusion weights that are neither local nor downloadable."""


def report(err: UserError, program: str) -> int:
    """Print ``err`` as the one line users see (``program: error: ...``); returns the exit code."""
    print(f"{program}: error: {err}", file=sys.stderr, flush=True)
    return USER_ERROR_EXIT_CODE
