"""Field checks shared by the record formats: bounded text, lists of text, integers.

Invariants:
* Every check raises only :class:`~datanet.errors.InvalidInput` or
  :class:`~datanet.errors.RecordTooLarge`, with the field's name in the message,
  so a user can tell which field of a record to fix.
* Text never contains control characters (C0, DEL, C1; multi-line fields may
  hold newlines and tabs): a remote record must not rewrite a terminal.
"""

from __future__ import annotations

import re

from datanet.errors import InvalidInput, RecordTooLarge

__all__ = ["MAX_U63", "check_int", "check_text", "check_texts"]

MAX_U63 = 2**63 - 1
"""The largest integer the records carry (MessagePack int64, non-negative side)."""

# Control characters (C0, DEL, C1) would let a remote record rewrite a terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def check_text(
    name: str, value: object, limit: int, *, required: bool = False, multiline: bool = False
) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise RecordTooLarge(f"{name} is {len(value)} characters; the limit is {limit}")
    if required and not value.strip():
        raise InvalidInput(f"{name} must not be empty")
    pattern = _CONTROL_MULTILINE if multiline else _CONTROL
    if pattern.search(value):
        raise InvalidInput(f"{name} contains control characters")
    return value


def check_texts(name: str, values: object, count: int, limit: int) -> None:
    if not isinstance(values, tuple):
        raise InvalidInput(f"{name} must be a tuple, not {type(values).__name__}")
    if len(values) > count:
        raise RecordTooLarge(f"{name} has {len(values)} items; the limit is {count}")
    for i, value in enumerate(values):
        check_text(f"{name}[{i}]", value, limit, required=True)


def check_int(name: str, value: object, lo: int = 0, hi: int = MAX_U63) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{name} must be an integer, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}, got {value}")
    return value
