"""Record validation by key namespace (the contract the DHT stores and lookups use).

A DHT key is bytes of the form ``/<namespace>/<rest>``. Each namespace has a
:class:`Validator`; the concrete ones (descriptors ``/dn/``, org records
``/dn-org/``, revocations ``/dn-rev/``) live in :mod:`datanet.records.validators` because
they need the record formats, while ``routing`` stays free of them.

Invariants:
* ``validate`` raises a :class:`identity.errors.DatanetError` for anything that
  must not be stored or forwarded (bad signature, wrong scope, expired, too big).
* ``select`` is *stable*: given the same values in the same order it returns the
  same index, and on ties the earliest value wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from identity.errors import DecodeError, RecordTooLarge

__all__ = ["NamespacedValidator", "Validator", "namespace_of"]

MAX_KEY_SIZE = 512


class Validator(Protocol):
    """Checks and orders the values stored under one key namespace."""

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """Raise a DatanetError unless ``value`` may be stored under ``key`` at ``now``."""

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """Return the index of the best of several *valid* values (stable)."""


def namespace_of(key: bytes) -> str:
    """The namespace of a DHT key (``b"/dn/x/y"`` -> ``"dn"``).

    Raises:
        RecordTooLarge: the key is longer than ``MAX_KEY_SIZE``.
        DecodeError: the key is not ``/<namespace>/<rest>``.
    """
    if len(key) > MAX_KEY_SIZE:
        raise RecordTooLarge(f"DHT key is {len(key)} bytes; the limit is {MAX_KEY_SIZE}")
    parts = key.split(b"/", 2)
    if len(parts) != 3 or parts[0] != b"" or not parts[1] or not parts[2]:
        raise DecodeError("DHT key must look like /<namespace>/<rest>")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("DHT key namespace must be ASCII") from None


class NamespacedValidator:
    """Dispatches to one :class:`Validator` per namespace; unknown namespaces are refused."""

    def __init__(self, validators: Mapping[str, Validator]) -> None:
        self._validators = dict(validators)

    def _for(self, key: bytes) -> Validator:
        ns = namespace_of(key)
        try:
            return self._validators[ns]
        except KeyError:
            raise DecodeError(f"no validator for DHT namespace {ns!r}") from None

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """See :meth:`Validator.validate`."""
        self._for(key).validate(key, value, now)

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """See :meth:`Validator.select`."""
        if not values:
            raise DecodeError("select needs at least one value")
        return self._for(key).select(key, values)
