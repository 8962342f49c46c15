"""The one error type users see: a single line naming the file, the field and what was expected."""


class UserError(Exception):
    """Bad input from the user. The CLI prints `error: <message>` and exits with status 2."""
