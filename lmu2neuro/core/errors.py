"""The one error type users see: a single line naming the file, the field and what was expected."""

import re

# terminal control sequences (CSI such as torch's bold "\x1b[1m", OSC, lone ESC codes) and other
# control characters would reach the user's terminal from an error line
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """``text`` without terminal control sequences or other control characters."""
    return _ESCAPES.sub("", text)


def first_line(exc: BaseException) -> str:
    """An exception as one bounded line for an error message: its type and its first line, no terminal
    control sequences."""
    text = (printable(str(exc)).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class UserError(Exception):
    """Bad input from the user. The CLI prints `error: <message>` and exits with status 2."""
