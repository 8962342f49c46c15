"""Bounded reading of the text documents users hand us: YAML hardware profiles and JSON traffic files.

A text file of a few kilobytes can still cost gigabytes or minutes: a YAML "billion laughs" file
(aliases of aliases, about 1 KB) expands to 10**9 nodes, and printing such a value in an error
message expands it again; nesting thousands of levels deep makes recursive parsers and validators
fail with RecursionError; an integer of 5,000 digits trips Python's int-conversion limit. So,
before and while parsing:

- the file must be a regular file (not a folder, FIFO or device) within a size limit, checked
  before a byte is read (``MAX_PROFILE_BYTES``, 256 KiB, for YAML profiles: the shipped ones are under
  13 KB; ``LMU2NEURO_MAX_JSON_BYTES``, default 128 MiB, for traffic files: a JSON document costs
  about 35 times its size in Python objects, measured 1.7 GB peak for 48 MiB of spike events, so
  about 4.5 GB at the limit; our own traffic of lava-dl's PilotNet, 107,033 neurons, is 41 MB);
- YAML aliases (``*name``) are refused (a profile never needs one), so nothing is ever expanded;
- nesting deeper than ``MAX_DEPTH`` (64) is refused, YAML while it is composed, JSON after the
  parser (whose own limit turns into the same one line);
- a JSON number longer than ``MAX_NUMBER_CHARS`` (40 characters) is refused as it is parsed.

Error messages quote the input through ``excerpt``, which never builds more than its limit.
"""

from __future__ import annotations

import json
import os
import reprlib

from lmu2neuro.core import guards
from lmu2neuro.core.errors import UserError

MAX_PROFILE_BYTES = 1 << 18
DEFAULT_MAX_JSON_BYTES = 1 << 27
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 40

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def excerpt(value, limit: int = 80) -> str:
    """A bounded repr of ``value`` for an error message: at most ``limit`` characters, built
    without rendering the whole value (a huge list costs no more than a short one)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def max_json_bytes() -> int:
    """The largest JSON document accepted (``LMU2NEURO_MAX_JSON_BYTES``, default 128 MiB)."""
    return guards.env_int("LMU2NEURO_MAX_JSON_BYTES", DEFAULT_MAX_JSON_BYTES)


def read_text(path: str | os.PathLike, what: str, expected: str, limit: int, env: str | None = None) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes; else one UserError line."""
    p = guards.require_file(path, what, expected)
    guards.check_file_size(p, what, limit, env)
    try:
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)  # the file may grow between the size check and the read
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if len(data) > limit:
        raise UserError(f"{path}: {what} exceeds the size limit of {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: {what} is not UTF-8 text (byte {exc.start}); expected {expected}") from None


def check_depth(path, obj, limit: int = MAX_DEPTH) -> None:
    """UserError when the lists and dicts of ``obj`` nest deeper than ``limit`` (walked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise UserError(f"{path}: nested more than {limit} levels deep; expected a flat document")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


class _BadNumber(ValueError):
    pass


def _number(kind):
    def parse(text: str):
        if len(text) > MAX_NUMBER_CHARS:
            raise _BadNumber(f"a number of {len(text):,} characters ({text[:20]}...); expected at most "
                             f"{MAX_NUMBER_CHARS}")
        return kind(text)
    return parse


def load_json(path: str | os.PathLike, what: str, expected: str):
    """A JSON document from a regular file, bounded in size, depth and number length."""
    text = read_text(path, what, expected, max_json_bytes(), "LMU2NEURO_MAX_JSON_BYTES")
    try:
        data = json.loads(text, parse_int=_number(int), parse_float=_number(float))
    except _BadNumber as exc:
        raise UserError(f"{path}: {exc}") from None
    except RecursionError:
        raise UserError(f"{path}: nested more than {MAX_DEPTH} levels deep; expected a flat document") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    check_depth(path, data)
    return data


def load_yaml(path: str | os.PathLike, what: str, expected: str, limit: int = MAX_PROFILE_BYTES):
    """A YAML document (safe types only) from a regular file: bounded in size, no aliases, bounded depth."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                ev = self.peek_event()
                raise UserError(f"{path}: line {ev.start_mark.line + 1}: YAML alias '*{str(ev.anchor)[:40]}' refused; "
                                f"write the value out ({what}s take no aliases)")
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise UserError(f"{path}: nested more than {MAX_DEPTH} levels deep; expected {expected}")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    text = read_text(path, what, expected, limit)
    loader = None
    try:
        loader = Loader(text)  # the reader refuses control characters already here
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise UserError(f"{path}: not valid YAML ({' '.join(str(problem).split())[:100]}{where})") from None
    except RecursionError:
        raise UserError(f"{path}: nested more than {MAX_DEPTH} levels deep; expected {expected}") from None
    except (ValueError, OverflowError) as exc:  # a scalar the constructor cannot build (a 5,000-digit int, 2001-13-45)
        raise UserError(f"{path}: not valid YAML (a value that cannot be read: {' '.join(str(exc).split())[:100]})") \
            from None
    finally:
        if loader is not None:
            loader.dispose()
