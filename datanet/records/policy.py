"""Access policies: who may ask for a dataset, for what, and for how long.

A descriptor carries one :class:`AccessPolicy`. This module is the home of the
policy's rules: today its shape and limits; the evaluation of access requests
against it (grants and reasoned denials) belongs here too.

Invariants:
* An :class:`AccessPolicy` that exists satisfies every limit below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from datanet.errors import InvalidInput, RecordTooLarge
from datanet.records.fields import check_int, check_texts
from identity.keys import OrgId

__all__ = [
    "ACCESS_MODES",
    "MAX_ALLOWED_ORGS",
    "MAX_PURPOSE",
    "MAX_PURPOSES",
    "MAX_VALIDITY_DAYS",
    "AccessMode",
    "AccessPolicy",
]

MAX_ALLOWED_ORGS = 64
MAX_PURPOSES = 32
MAX_PURPOSE = 64
MAX_VALIDITY_DAYS = 3650

AccessMode = Literal["open", "request", "closed"]
ACCESS_MODES: tuple[str, ...] = ("open", "request", "closed")


@dataclass(frozen=True)
class AccessPolicy:
    """Who may ask for the data, for what, and for how long.

    Args:
        mode: ``"open"`` (anyone may use it; requests are granted without a
            human), ``"request"`` (requests go to the publisher for a decision)
            or ``"closed"`` (no new grants).
        allowed_orgs: organizations that may request; empty means any org.
        purposes: purposes a request may declare; empty means any purpose.
        max_validity_days: the longest grant the publisher will issue.
    """

    mode: AccessMode = "request"
    allowed_orgs: tuple[OrgId, ...] = ()
    purposes: tuple[str, ...] = ()
    max_validity_days: int = 365

    def __post_init__(self) -> None:
        if self.mode not in ACCESS_MODES:
            raise InvalidInput(
                f"access_policy mode must be one of {', '.join(ACCESS_MODES)}, got {self.mode!r}"
            )
        if not isinstance(self.allowed_orgs, tuple):
            raise InvalidInput("access_policy allowed_orgs must be a tuple")
        if len(self.allowed_orgs) > MAX_ALLOWED_ORGS:
            raise RecordTooLarge(
                f"access_policy allowed_orgs has {len(self.allowed_orgs)} items; "
                f"the limit is {MAX_ALLOWED_ORGS}"
            )
        if not all(isinstance(o, OrgId) for o in self.allowed_orgs):
            raise InvalidInput("access_policy allowed_orgs must hold OrgId values")
        check_texts("access_policy purposes", self.purposes, MAX_PURPOSES, MAX_PURPOSE)
        check_int("access_policy max_validity_days", self.max_validity_days, 1, MAX_VALIDITY_DAYS)
