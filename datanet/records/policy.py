"""Access policies: who may ask for a dataset, for what, and for how long.

A descriptor carries one :class:`AccessPolicy`. This module is the home of the
policy's rules: its shape and limits, and :func:`evaluate`, the pure decision on
an access request (grant at once, queue for an operator, or deny with a reason
from :data:`DENIAL_REASONS`).

Invariants:
* An :class:`AccessPolicy` that exists satisfies every limit below.
* :func:`evaluate` is pure and total: the same inputs give the same
  :class:`Verdict`; the checks run in a fixed order and the first that fails
  names the denial; ``grant`` only when every check holds and the mode is ``open``.
* Every denial reason a node sends is a key of :data:`DENIAL_REASONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from datanet.errors import InvalidInput, RecordTooLarge
from datanet.records.fields import check_int, check_texts
from datanet.records.purposes import purpose_satisfies
from identity.keys import OrgId

__all__ = [
    "ACCESS_MODES",
    "DENIAL_REASONS",
    "MAX_ALLOWED_ORGS",
    "MAX_PURPOSE",
    "MAX_PURPOSES",
    "MAX_VALIDITY_DAYS",
    "AccessMode",
    "AccessPolicy",
    "Outcome",
    "Verdict",
    "evaluate",
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


#: Why a request was denied: machine-readable code -> one line for people.
DENIAL_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "org_not_allowed": "the dataset's policy does not admit requests from your organization",
        "purpose_not_allowed": "the dataset's policy does not admit the purpose you declared",
        "validity_too_long": "you asked for a longer grant than the dataset's policy allows",
        "dataset_closed": "the dataset's policy is closed: it issues no new grants",
        "dataset_withdrawn": "the dataset was withdrawn by its publisher",
        "dataset_unknown": "the owner does not know this dataset (or not the version you saw)",
        "descriptor_outdated": "the request was made against an older version of the descriptor",
        "expired": "the request's deadline passed before it was decided",
        "denied_by_operator": "an operator of the owning organization denied the request",
    }
)

Outcome = Literal["grant", "queue", "deny"]


@dataclass(frozen=True)
class Verdict:
    """What the owner does with a request.

    Attributes:
        outcome: ``grant`` (at once), ``queue`` (for an operator) or ``deny``.
        reason: a :data:`DENIAL_REASONS` code when denied, else None.
        message: one line for people; for a denial, what the requester can do.
    """

    outcome: Outcome
    reason: str | None
    message: str


def _deny(reason: str, message: str) -> Verdict:
    return Verdict("deny", reason, message)


def evaluate(
    policy: AccessPolicy,
    *,
    current_sequence: int,
    request_sequence: int,
    org: OrgId,
    purpose: str,
    validity_days: int,
    deadline: int,
    now: int,
) -> Verdict:
    """Decide a request against the dataset's current policy at ``now``.

    The checks, in order (the first that fails is the denial): the deadline
    (``expired``), the mode (``dataset_closed``), the descriptor sequence the
    requester saw (older: ``descriptor_outdated``; newer than the owner's:
    ``dataset_unknown``), the organization (``org_not_allowed``), the purpose
    (``purpose_not_allowed``; a narrower DPV term satisfies a broader allowed one),
    the validity (``validity_too_long``). Then ``open`` grants and ``request`` queues.

    Args:
        policy: the access policy of the owner's current descriptor.
        current_sequence: the sequence of that descriptor.
        request_sequence: the sequence the requester saw.
        org: the requesting organization.
        purpose: the declared purpose (a vocabulary id).
        validity_days: the grant's requested length.
        deadline: the request's deadline; ``now`` at or past it is ``expired``.
        now: the current time (Unix seconds).
    """
    if now >= deadline:
        return _deny("expired", f"the request's deadline ({deadline}) has passed; send a new one")
    if policy.mode == "closed":
        return _deny("dataset_closed", "this dataset issues no new grants (its policy is closed)")
    if request_sequence < current_sequence:
        return _deny(
            "descriptor_outdated",
            f"you saw version {request_sequence} of the descriptor; the current one is "
            f"{current_sequence}: resolve the dataset again and repeat the request",
        )
    if request_sequence > current_sequence:
        return _deny(
            "dataset_unknown",
            f"the owner holds version {current_sequence} of the descriptor, not "
            f"{request_sequence}; resolve the dataset again and repeat the request",
        )
    if policy.allowed_orgs and org not in policy.allowed_orgs:
        return _deny(
            "org_not_allowed",
            "this dataset admits requests only from "
            f"{len(policy.allowed_orgs)} named organization(s), and yours is not one of them",
        )
    if policy.purposes and not any(purpose_satisfies(purpose, p) for p in policy.purposes):
        return _deny(
            "purpose_not_allowed",
            f"purpose {purpose!r} is not admitted; ask with --purpose "
            + " or ".join(policy.purposes),
        )
    if validity_days > policy.max_validity_days:
        days = policy.max_validity_days
        return _deny(
            "validity_too_long",
            f"this dataset grants at most {days} days; ask for --days {days} or fewer",
        )
    if policy.mode == "open":
        return Verdict("grant", None, f"granted for {validity_days} days (the policy is open)")
    return Verdict("queue", None, "waiting for an operator of the owning organization to decide")
