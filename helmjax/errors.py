"""Errors a user can cause: one line naming the cause and the fix; `run.py` prints them and exits 2."""


class UserError(ValueError):
    """Bad input from the user (flag, config value, missing file). The message is shown as is, one line."""
