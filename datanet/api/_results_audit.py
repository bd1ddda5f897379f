"""The control API's answers about the audit transparency log (issue 11).

Part of :mod:`datanet.api.results`, which loads it on first use of one of its
names: creating a frozen dataclass costs about a millisecond, so a command-line
command pays only for the answers it reads.

Invariants: as :mod:`datanet.api.results` (strict parsing into frozen records,
:class:`~datanet.api.errors.ApiError` for any other shape; nothing heavy imported).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from datanet.api.results import (
    _b64_field,
    _hex_field,
    _items,
    _mapping,
    _opt_b64,
    _opt_int,
    _opt_text,
    bad_response,
    field_of,
    texts_of,
)

__all__ = [
    "AuditAlarm",
    "AuditEntryInfo",
    "AuditHeadInfo",
    "AuditProof",
    "AuditVerifyReport",
    "CosignatureInfo",
    "ReceiptCheck",
    "WitnessedHead",
    "parse_audit_alarms",
    "parse_audit_entries",
    "parse_audit_witnessed",
]


@dataclass(frozen=True)
class AuditEntryInfo:
    """One entry of a node's audit log (one line of ``audit export``).

    ``record`` holds the exact signed bytes the entry refers to (up to 4 KiB), else
    None; ``record_hash`` is their SHA-256 (hex) either way, None when the entry
    refers to no record; ``leaf_hash`` is the entry's RFC 9162 leaf hash (hex).
    """

    index: int
    kind: str
    timestamp: int
    details: Mapping[str, Any]
    record: bytes | None
    record_hash: str | None
    leaf_hash: str

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditEntryInfo:
        """Parse one ``AuditEntry`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        record_hash = doc.get("record_hash")
        return cls(
            field_of(doc, "index", int),
            field_of(doc, "kind", str),
            field_of(doc, "timestamp", int),
            dict(_mapping(doc.get("details"), "details")),
            _opt_b64(doc, "record"),
            None if record_hash is None else _hex_field(doc, "record_hash"),
            _hex_field(doc, "leaf_hash"),
        )


@dataclass(frozen=True)
class CosignatureInfo:
    """A witness's cosignature of a head: which node of which org checked it, and when."""

    witness: str
    org: str
    at: int
    cosignature: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CosignatureInfo:
        """Parse one cosignature object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "witness", str),
            field_of(doc, "org", str),
            field_of(doc, "at", int),
            _b64_field(doc, "cosignature"),
        )


@dataclass(frozen=True)
class AuditHeadInfo:
    """``audit head``: a signed tree head of the node's log (``head``: the signed bytes)."""

    node: str
    org: str | None
    size: int
    root: str
    timestamp: int
    head: bytes
    cosignatures: tuple[CosignatureInfo, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditHeadInfo:
        """Parse one ``AuditHead`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "node", str),
            _opt_text(doc, "org"),
            field_of(doc, "size", int),
            _hex_field(doc, "root"),
            field_of(doc, "timestamp", int),
            _b64_field(doc, "head"),
            tuple(CosignatureInfo.from_json(c) for c in _items(doc, "cosignatures")),
        )


@dataclass(frozen=True)
class AuditVerifyReport:
    """``audit verify``: ``ok``, or the first bad entry and why."""

    ok: bool
    size: int
    root: str
    entries_checked: int
    heads_checked: int
    first_bad_index: int | None
    reason: str | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditVerifyReport:
        """Parse one ``AuditVerify`` object.

        Raises:
            ApiError: a missing field, one of the wrong type, or a failure without its entry.
        """
        report = cls(
            field_of(doc, "ok", bool),
            field_of(doc, "size", int),
            _hex_field(doc, "root"),
            field_of(doc, "entries_checked", int),
            field_of(doc, "heads_checked", int),
            _opt_int(doc, "first_bad_index"),
            _opt_text(doc, "reason"),
        )
        if report.ok == (report.first_bad_index is not None):
            raise bad_response("audit verify")
        return report


@dataclass(frozen=True)
class AuditProof:
    """``audit prove``: the receipt of entry ``index`` under a head of ``size`` entries."""

    index: int
    size: int
    root: str
    receipt: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditProof:
        """Parse one ``AuditProof`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "index", int),
            field_of(doc, "size", int),
            _hex_field(doc, "root"),
            _b64_field(doc, "receipt"),
        )


@dataclass(frozen=True)
class AuditAlarm:
    """An alarm raised while witnessing another node's log (``heads``: the evidence)."""

    at: int
    kind: str
    log_node: str
    log_org: str | None
    reported_by: str
    detail: str
    heads: tuple[bytes, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditAlarm:
        """Parse one ``AuditAlarm`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        heads = texts_of(doc, "heads")
        return cls(
            field_of(doc, "at", int),
            field_of(doc, "kind", str),
            field_of(doc, "log_node", str),
            _opt_text(doc, "log_org"),
            field_of(doc, "reported_by", str),
            field_of(doc, "detail", str),
            tuple(_b64_field({"head": h}, "head") for h in heads),
        )


@dataclass(frozen=True)
class WitnessedHead:
    """The last head a node keeps of another node's log, and whether it cosigned it."""

    log_node: str
    log_org: str | None
    size: int
    root: str
    timestamp: int
    checked_at: int
    cosigned: bool

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> WitnessedHead:
        """Parse one ``WitnessedHead`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "log_node", str),
            _opt_text(doc, "log_org"),
            field_of(doc, "size", int),
            _hex_field(doc, "root"),
            field_of(doc, "timestamp", int),
            field_of(doc, "checked_at", int),
            field_of(doc, "cosigned", bool),
        )


def parse_audit_entries(doc: Mapping[str, Any]) -> list[AuditEntryInfo]:
    """The ``entries`` list of ``audit/entries``."""
    return [AuditEntryInfo.from_json(item) for item in _items(doc, "entries")]


def parse_audit_alarms(doc: Mapping[str, Any]) -> list[AuditAlarm]:
    """The ``alarms`` list of ``audit/alarms``."""
    return [AuditAlarm.from_json(item) for item in _items(doc, "alarms")]


def parse_audit_witnessed(doc: Mapping[str, Any]) -> list[WitnessedHead]:
    """The ``witnessed`` list of ``audit/witnessed``."""
    return [WitnessedHead.from_json(item) for item in _items(doc, "witnessed")]


@dataclass(frozen=True)
class ReceiptCheck:
    """What :func:`datanet.client.check_receipt` found in a receipt.

    ``valid`` false comes with ``error_code``/``error_message`` (and the other fields
    None or empty). ``trusted`` says whether the organizations were checked against a
    trust store; without one, only hashes, signatures and certificate chains were
    checked, so any organization's node could have signed it.
    """

    valid: bool
    trusted: bool
    error_code: str | None = None
    error_message: str | None = None
    index: int | None = None
    kind: str | None = None
    timestamp: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    record_hash: str | None = None
    log_node: str | None = None
    log_org: str | None = None
    size: int | None = None
    root: str | None = None
    head_timestamp: int | None = None
    witnesses: tuple[tuple[str, str], ...] = ()
    """(witness node, its org) of each cosignature."""
    witness_orgs: tuple[str, ...] = ()
    """Organizations other than the log's own that cosigned the head."""
