"""Errors that reach users as one line and a non-zero exit."""


class UserError(Exception):
    """Bad input or an unmet requirement the user can fix; the message says what and how."""


class ModelUnavailableError(UserError):
    """Diffusion weights that are neither local nor downloadable."""
