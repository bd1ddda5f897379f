"""The control API's answers about access requests, grants and purposes (issue 10).

Part of :mod:`datanet.api.results`, which loads it on first use of one of its
names: creating a frozen dataclass costs about a millisecond, so a command-line
command pays only for the answers it reads.

Invariants: as :mod:`datanet.api.results` (strict parsing into frozen records,
:class:`~datanet.api.errors.ApiError` for any other shape; nothing heavy imported).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datanet.api.results import (
    _b64_field,
    _items,
    _mapping,
    _opt_int,
    _opt_text,
    bad_response,
    field_of,
)

__all__ = [
    "AccessOutcome",
    "AccessRequestInfo",
    "DenialInfo",
    "GrantCheck",
    "GrantInfo",
    "PurposeInfo",
    "RouteHop",
    "parse_access_requests",
    "parse_grants",
    "parse_purposes",
]


@dataclass(frozen=True)
class RouteHop:
    """One hop of a request's route: who handled it, and whether it forwarded or decided."""

    hop: int
    node: str
    org: str
    action: str
    at: int

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RouteHop:
        """Parse one ``RouteHop`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "hop", int),
            field_of(doc, "node", str),
            field_of(doc, "org", str),
            field_of(doc, "action", str),
            field_of(doc, "at", int),
        )


def _route(doc: Mapping[str, Any]) -> tuple[RouteHop, ...]:
    return tuple(RouteHop.from_json(h) for h in _items(doc, "route"))


@dataclass(frozen=True)
class AccessRequestInfo:
    """An access request as this node sees it (``direction``: ``sent`` or ``received``).

    ``state`` is ``pending``, ``granted``, ``denied`` or ``failed``; once decided,
    ``reason`` (a denial's code), ``message``, ``decided_at`` and ``decided_by``
    (``policy``, ``operator`` or ``deadline``) say how; ``grant_id`` names the grant.
    """

    request_id: str
    direction: str
    dataset_id: str
    sequence: int
    purpose: str
    days: int
    note: str
    requester_node: str
    requester_org: str
    created: int
    deadline: int
    state: str
    reason: str | None
    message: str
    decided_at: int | None
    decided_by: str | None
    grant_id: str | None
    route: tuple[RouteHop, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AccessRequestInfo:
        """Parse one ``RequestView`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "request_id", str),
            field_of(doc, "direction", str),
            field_of(doc, "dataset_id", str),
            field_of(doc, "sequence", int),
            field_of(doc, "purpose", str),
            field_of(doc, "days", int),
            field_of(doc, "note", str),
            field_of(doc, "requester_node", str),
            field_of(doc, "requester_org", str),
            field_of(doc, "created", int),
            field_of(doc, "deadline", int),
            field_of(doc, "state", str),
            _opt_text(doc, "reason"),
            field_of(doc, "message", str),
            _opt_int(doc, "decided_at"),
            _opt_text(doc, "decided_by"),
            _opt_text(doc, "grant_id"),
            _route(doc),
        )


@dataclass(frozen=True)
class GrantInfo:
    """A signed grant: who may use which dataset, for what, until when.

    ``role`` is ``issued`` (this node's org owns the data) or ``received``;
    ``details`` holds the decrypted access details when they were asked for;
    ``envelope`` is the signed grant itself (what ``datanet grants verify`` checks).
    """

    grant_id: str
    request_id: str
    dataset_id: str
    sequence: int
    grantee_node: str
    grantee_org: str
    purpose: str
    not_before: int
    not_after: int
    valid_until: int
    issuer_node: str
    issuer_org: str
    issued_at: int
    route: tuple[RouteHop, ...]
    role: str
    revoked_at: int | None
    revocation_reason: str
    details: Mapping[str, Any] | None
    envelope: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> GrantInfo:
        """Parse one ``GrantView`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        details = doc.get("details")
        return cls(
            field_of(doc, "grant_id", str),
            field_of(doc, "request_id", str),
            field_of(doc, "dataset_id", str),
            field_of(doc, "sequence", int),
            field_of(doc, "grantee_node", str),
            field_of(doc, "grantee_org", str),
            field_of(doc, "purpose", str),
            field_of(doc, "not_before", int),
            field_of(doc, "not_after", int),
            field_of(doc, "valid_until", int),
            field_of(doc, "issuer_node", str),
            field_of(doc, "issuer_org", str),
            field_of(doc, "issued_at", int),
            _route(doc),
            field_of(doc, "role", str),
            _opt_int(doc, "revoked_at"),
            field_of(doc, "revocation_reason", str),
            None if details is None else dict(_mapping(details, "details")),
            _b64_field(doc, "envelope"),
        )


@dataclass(frozen=True)
class DenialInfo:
    """A signed denial: the machine-readable ``reason``, what it means, the owner's words."""

    reason: str
    explanation: str
    message: str
    node: str
    org: str
    decided_at: int
    route: tuple[RouteHop, ...]
    envelope: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DenialInfo:
        """Parse one ``DenialView`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "reason", str),
            field_of(doc, "explanation", str),
            field_of(doc, "message", str),
            field_of(doc, "node", str),
            field_of(doc, "org", str),
            field_of(doc, "decided_at", int),
            _route(doc),
            _b64_field(doc, "envelope"),
        )


_OUTCOME_STATES = ("granted", "pending", "denied")


@dataclass(frozen=True)
class AccessOutcome:
    """The answer to a request: ``granted`` (``grant`` set), ``denied`` (``denial`` set)
    or ``pending`` (neither: the owner's operator has not decided yet)."""

    state: str
    request: AccessRequestInfo
    grant: GrantInfo | None
    denial: DenialInfo | None
    receipt: bytes | None = None
    """The owner's audit receipt of the decision (issue 11), when the owner sent one."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AccessOutcome:
        """Parse one ``AccessOutcome`` object.

        Raises:
            ApiError: a missing field, one of the wrong type, or a state without
                its grant or denial.
        """
        state = field_of(doc, "state", str)
        grant, denial = doc.get("grant"), doc.get("denial")
        outcome = cls(
            state,
            AccessRequestInfo.from_json(_mapping(doc.get("request"), "request")),
            None if grant is None else GrantInfo.from_json(_mapping(grant, "grant")),
            None if denial is None else DenialInfo.from_json(_mapping(denial, "denial")),
            None if doc.get("receipt") is None else _b64_field(doc, "receipt"),
        )
        if state not in _OUTCOME_STATES or (state == "granted") != (outcome.grant is not None):
            raise bad_response("access outcome")
        if (state == "denied") != (outcome.denial is not None):
            raise bad_response("access outcome")
        return outcome


@dataclass(frozen=True)
class GrantCheck:
    """``verify_grant``: ``valid``, or the ``error_code``/``error_message`` that says why not;
    ``grant`` is the decoded grant when it could be decoded."""

    valid: bool
    deep: bool
    error_code: str | None
    error_message: str | None
    grant: GrantInfo | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> GrantCheck:
        """Parse one ``GrantCheck`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        error, grant = doc.get("error"), doc.get("grant")
        code = message = None
        if error is not None:
            error = _mapping(error, "error")
            code, message = field_of(error, "code", str), field_of(error, "message", str)
        valid = field_of(doc, "valid", bool)
        if valid == (error is not None):
            raise bad_response("grant check")
        return cls(
            valid,
            field_of(doc, "deep", bool),
            code,
            message,
            None if grant is None else GrantInfo.from_json(_mapping(grant, "grant")),
        )


@dataclass(frozen=True)
class PurposeInfo:
    """One purpose of the vocabulary (a W3C DPV term) and its broader term."""

    id: str
    iri: str
    label: str
    description: str
    parent: str | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PurposeInfo:
        """Parse one purpose object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "id", str),
            field_of(doc, "iri", str),
            field_of(doc, "label", str),
            field_of(doc, "description", str),
            _opt_text(doc, "parent"),
        )


def parse_access_requests(doc: Mapping[str, Any]) -> list[AccessRequestInfo]:
    """The ``requests`` list of ``access/requests``."""
    return [AccessRequestInfo.from_json(item) for item in _items(doc, "requests")]


def parse_grants(doc: Mapping[str, Any]) -> list[GrantInfo]:
    """The ``grants`` list of ``access/grants``."""
    return [GrantInfo.from_json(item) for item in _items(doc, "grants")]


def parse_purposes(doc: Mapping[str, Any]) -> list[PurposeInfo]:
    """The ``purposes`` list of ``access/purposes``."""
    return [PurposeInfo.from_json(item) for item in _items(doc, "purposes")]
