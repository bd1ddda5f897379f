"""The simulator's record validator: ``seq:payload:mac`` values, highest ``seq`` wins.

Real datanet values are signed envelopes checked against certificate chains; the
simulator needs the same *shape* of check at a fraction of the cost. A value is
``b"<seq>:<payload>:<mac>"`` where ``mac`` is a truncated HMAC-SHA256 under a
secret only honest publishers hold (it stands in for the signature). A liar
without the secret can only serve forged values (bad mac, rejected) or replay
genuine old ones (valid but lower ``seq``, never selected over a newer one).

Invariants:
* :meth:`SimValidator.validate` raises :class:`~identity.errors.SignatureError`
  for a wrong mac and :class:`~identity.errors.DecodeError` for a malformed
  value; it never raises anything else.
* :meth:`SimValidator.select` is stable: the highest ``seq`` wins and ties go
  to the earliest value.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from identity.errors import DecodeError, SignatureError

__all__ = ["SimValidator"]

_MAC_HEX = 16
_MAX_SEQ_DIGITS = 20


class SimValidator:
    """Validates and orders simulator values (see the module docstring)."""

    def __init__(self, secret: bytes) -> None:
        """``secret`` is what honest publishers "sign" with."""
        self._secret = secret

    def _mac(self, key: bytes, seq: int, payload: bytes) -> bytes:
        msg = b"%d\x00%s\x00%s" % (seq, key, payload)
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:_MAC_HEX].encode()

    def make_value(self, key: bytes, seq: int, payload: bytes) -> bytes:
        """A genuine value for ``key`` with sequence number ``seq``."""
        return b"%d:%s:%s" % (seq, payload, self._mac(key, seq, payload))

    @staticmethod
    def parse(value: bytes) -> tuple[int, bytes, bytes]:
        """Split a value into ``(seq, payload, mac)``.

        Raises:
            DecodeError: the value is not ``<seq>:<payload>:<mac>``.
        """
        head, sep, rest = value.partition(b":")
        payload, sep2, mac = rest.rpartition(b":")
        if not sep or not sep2 or not head.isdigit() or len(head) > _MAX_SEQ_DIGITS:
            raise DecodeError("simulator value must look like <seq>:<payload>:<mac>")
        return int(head), payload, mac

    @staticmethod
    def seq_of(value: bytes) -> int:
        """The sequence number of a well-formed value.

        Raises:
            DecodeError: the value is malformed.
        """
        return SimValidator.parse(value)[0]

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        """Raise unless ``value`` carries the publishers' mac for ``key``.

        Raises:
            DecodeError: malformed value.
            SignatureError: the mac does not match (a forged value).
        """
        seq, payload, mac = self.parse(value)
        if not hmac.compare_digest(mac, self._mac(key, seq, payload)):
            raise SignatureError("simulator value has a forged mac")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        """Index of the value with the highest ``seq``; the earliest wins ties.

        Raises:
            DecodeError: ``values`` is empty or holds a malformed value.
        """
        if not values:
            raise DecodeError("select needs at least one value")
        best = 0
        best_seq = self.seq_of(values[0])
        for i in range(1, len(values)):
            seq = self.seq_of(values[i])
            if seq > best_seq:
                best, best_seq = i, seq
        return best
