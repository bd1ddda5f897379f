"""The in-memory API node (with access requests), and the real daemon over it in its own process.

Usage: python -m datanet.testing.memory_daemon DATA_DIR. Prints the API URL on stdout when ready.
With APINODE_SLOW_START=<seconds> the node takes that long to open (like a node
still joining its network) and prints "opening" on stdout first. With
APINODE_GATEWAY_DOWN=1 every access request fails at its second hop with
``gateway_unreachable`` (as when the owner's gateway is stopped).
Used by the daemon tests for signals, pid lock and files, and by the HTTP, client
and CLI tests of access requests; the real node's own end-to-end tests live in tests/e2e.

:class:`AccessMemoryNode` adds issue 10's access methods to
:class:`~datanet.testing.doubles.MemoryNode` with a small, honest model: the node is
both the requester and the owner of every dataset in its catalog (whose
descriptors carry real access policies). A request is decided by the descriptor's
policy as the issue says: ``closed`` is denied (``dataset_closed``), a requester
org outside ``allowed_orgs`` is ``org_not_allowed``, an undeclared purpose
``purpose_not_allowed``, too many days ``validity_too_long``; otherwise ``open`` is
granted at once and ``request`` waits for approve/deny, or for its deadline
(``expired``). Its grants are "signed" with an HMAC under a key of this node only
(a test stand-in for the real Ed25519 envelopes), so ``verify_grant`` can tell a
good grant from a forged, expired or revoked one.

Issue 11's audit methods are backed by a real :class:`~datanet.store.audit.AuditLog`
(``audit_path``, default a file in a fresh temporary directory; the daemon puts it at
``audit.sqlite`` in its data directory, where the real node keeps it): publications,
withdrawals, received requests, decisions, grants and operator actions are appended as
they happen, heads are signed with the node's key and certificate, receipts are real.
A second node of another organization (``witness_key``) cosigns heads on request
(:meth:`AccessMemoryNode.cosign_latest`); the witness side (alarms, witnessed heads) is
what the tests put in with :meth:`AccessMemoryNode.observe` and
:meth:`AccessMemoryNode.raise_alarm`.

Invariants:
* It returns exactly the JSON shapes of the node contract (``RequestView``,
  ``GrantView``, ``DenialView``, ``AccessOutcome``, ``GrantCheck``, ``RouteHop``,
  and the audit shapes ``AuditEntry``, ``AuditHead``…);
  the HTTP tests validate them against the OpenAPI document's schemas.
* Time is ``self.now`` (fixed; tests move it); ``wait`` waits on real time for a
  decision made by another call (approve, deny), and never longer than asked.
* It exists for tests only (``datanet.testing`` is never imported by the product).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import trio

from datanet.api._node_protocol import NodeAPI
from datanet.daemon import run_daemon
from datanet.errors import DatanetError, InvalidInput, NotFound, PeerUnreachable
from datanet.node.config import Config
from datanet.node.results import PublishOutcome
from datanet.records.audit import (
    AuditEntry,
    cosign_head,
    decode_receipt,
    make_receipt,
    open_tree_head,
    verify_cosignature,
    verify_tree_head,
)
from datanet.records.ids import DatasetId
from datanet.store.audit import AuditLog
from datanet.testing.clock import DAY
from datanet.testing.doubles import MemoryNode
from datanet.testing.records import certificate, key
from identity.certs import parse_certificate
from identity.keys import KeyPair, OrgId, PeerId

__all__ = [
    "DENIAL_EXPLANATIONS",
    "MEMORY_PURPOSES",
    "AccessMemoryNode",
    "factory",
    "main",
]

#: What each denial reason means, as the node explains it to the requester.
DENIAL_EXPLANATIONS: Mapping[str, str] = {
    "dataset_closed": "the dataset's access policy is closed: its owner issues no new grants",
    "org_not_allowed": "the dataset's policy names the organizations that may ask; yours "
    "is not one of them",
    "purpose_not_allowed": "the dataset's policy does not allow this purpose",
    "validity_too_long": "more days were asked than the policy's longest grant",
    "descriptor_outdated": "the request named an older descriptor than the owner holds",
    "expired": "nobody decided before the request's deadline",
    "denied_by_operator": "the owner's operator denied the request",
}

#: A few terms of the W3C DPV purposes: (id, DPV term, label, description, parent).
MEMORY_PURPOSES: tuple[tuple[str, str, str, str, str | None], ...] = (
    (
        "research-and-development",
        "ResearchAndDevelopment",
        "Research and Development",
        "Research and development of new methods, products or services.",
        None,
    ),
    (
        "academic-research",
        "AcademicResearch",
        "Academic Research",
        "Research conducted in an academic context.",
        "research-and-development",
    ),
    (
        "commercial-research",
        "CommercialResearch",
        "Commercial Research",
        "Research conducted in a commercial context.",
        "research-and-development",
    ),
    (
        "service-provision",
        "ServiceProvision",
        "Service Provision",
        "Providing a service to its users.",
        None,
    ),
    (
        "service-optimisation",
        "ServiceOptimisation",
        "Service Optimisation",
        "Improving how a service is provided.",
        "service-provision",
    ),
)
_PARENTS = {p[0]: p[4] for p in MEMORY_PURPOSES}
_MAGIC = b"DNGRANT-MEMORY/1\n"
_DEADLINE = DAY
_Direction = Literal["received", "sent"]


@dataclass
class _Request:
    request_id: str
    directions: set[str]
    dataset_id: str
    sequence: int
    purpose: str
    days: int
    note: str
    requester_node: str
    requester_org: str
    created: int
    deadline: int
    route: list[dict[str, Any]]
    state: str = "pending"
    reason: str | None = None
    message: str = ""
    decided_at: int | None = None
    decided_by: str | None = None
    grant_id: str | None = None
    denial: dict[str, Any] | None = None
    waiters: list[anyio.Event] = field(default_factory=list)

    def settle(self) -> None:
        for event in self.waiters:
            event.set()
        self.waiters.clear()

    def view(self, direction: str) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "direction": direction,
            "dataset_id": self.dataset_id,
            "sequence": self.sequence,
            "purpose": self.purpose,
            "days": self.days,
            "note": self.note,
            "requester_node": self.requester_node,
            "requester_org": self.requester_org,
            "created": self.created,
            "deadline": self.deadline,
            "state": self.state,
            "reason": self.reason,
            "message": self.message,
            "decided_at": self.decided_at,
            "decided_by": self.decided_by,
            "grant_id": self.grant_id,
            "route": [dict(h) for h in self.route],
        }


@dataclass
class _Grant:
    core: dict[str, Any]
    envelope: bytes
    roles: set[str]
    details: dict[str, Any]
    revoked_at: int | None = None
    revocation_reason: str = ""

    def view(self, role: str, *, details: bool) -> dict[str, Any]:
        return {
            **self.core,
            "route": [dict(h) for h in self.core["route"]],
            "role": role,
            "revoked_at": self.revoked_at,
            "revocation_reason": self.revocation_reason,
            "details": dict(self.details) if details and role == "received" else None,
            "envelope": base64.b64encode(self.envelope).decode("ascii"),
        }


@dataclass
class AccessMemoryNode(MemoryNode):
    """:class:`MemoryNode` plus the access-request methods of ``NodeAPI`` (see the module)."""

    gateway_key: KeyPair = field(default_factory=lambda: key("\x03"))
    gateway_down: bool = False
    """When set, requests fail at hop 1 (this org's gateway) with ``gateway_unreachable``."""
    requests: dict[str, _Request] = field(default_factory=dict)
    issued: dict[str, _Grant] = field(default_factory=dict)
    counter: int = 0
    audit_path: Path | None = None
    """The audit log's file (default: in a fresh temporary directory)."""
    witness_key: KeyPair = field(default_factory=lambda: key("\x06"))
    witness_org: KeyPair = field(default_factory=lambda: key("\x07"))
    alarms: list[dict[str, Any]] = field(default_factory=list)
    witnessed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.audit_path is None:
            self.audit_path = Path(tempfile.mkdtemp(prefix="dn-audit-")) / "audit.sqlite"
        self._logs: dict[int, AuditLog] = {}
        self.audit  # noqa: B018 - create the file now, so a bad path fails here
        self.cosigs: dict[bytes, list[bytes]] = {}
        self.witness_chain = [
            certificate(
                self.witness_org,
                self.witness_key,
                not_before=self.now - 10,
                not_after=self.now + 365 * DAY,
                org_name="witness-org",
            )
        ]
        self.trust.trust(self.witness_org.org_id)

    @property
    def audit(self) -> AuditLog:
        """The audit log, through this thread's own connection (sqlite3 connections stay
        in their thread; ASGI test clients may call from several)."""
        log = self._logs.get(threading.get_ident())
        if log is None:
            assert self.audit_path is not None
            log = self._logs[threading.get_ident()] = AuditLog(self.audit_path)
        return log

    def close(self) -> None:
        """Close the audit log's connections (those of other threads as far as possible)."""
        for log in self._logs.values():
            with contextlib.suppress(DatanetError):
                log.close()
        self._logs.clear()

    # -- audit helpers for tests -----------------------------------------------------
    def record(self, kind: str, record: bytes | None, details: Mapping[str, Any]) -> int:
        """Append one entry now (durably); its index."""
        return self.audit.append(AuditEntry.create(kind, self.now, record, dict(details)))

    def cosign_latest(self) -> bytes:
        """The witness node cosigns this node's latest head (signing one if needed)."""
        raw = self._head(fresh=False)
        head, _ = open_tree_head(raw)
        cosig = cosign_head(head, self.witness_key, self.witness_chain, self.now)
        self.cosigs.setdefault(raw, []).append(cosig)
        return cosig

    def observe(self, head_raw: bytes, *, cosigned: bool = True) -> None:
        """Keep ``head_raw`` (another node's signed head) as the last head seen of its log."""
        verified = verify_tree_head(head_raw, self.trust, self.now)
        self.witnessed[str(verified.head.node)] = {
            "log_node": str(verified.head.node),
            "log_org": str(verified.org),
            "size": verified.head.size,
            "root": verified.head.root.hex(),
            "timestamp": verified.head.timestamp,
            "checked_at": self.now,
            "cosigned": cosigned,
        }

    def raise_alarm(self, kind: str, heads: Sequence[bytes], detail: str) -> None:
        """Record an alarm about the log that signed ``heads[0]`` (the evidence)."""
        head, env = open_tree_head(heads[0])
        org = None
        with contextlib.suppress(DatanetError):
            org = str(parse_certificate(env.chain[0]).org)
        self.alarms.append(
            {
                "at": self.now,
                "kind": kind,
                "log_node": str(head.node),
                "log_org": org,
                "reported_by": str(self.peer_id),
                "detail": detail,
                "heads": [base64.b64encode(h).decode("ascii") for h in heads],
            }
        )

    # -- helpers for tests ----------------------------------------------------------
    def receive_request(
        self,
        dataset_id: DatasetId,
        *,
        purpose: str = "academic-research",
        days: int = 30,
        note: str = "",
        requester: KeyPair | None = None,
        org: OrgId | None = None,
    ) -> str:
        """A pending request from another organization arrives (received only); its id."""
        requester = requester or key("\x04")
        req = self._new_request(
            dataset_id,
            purpose,
            days,
            note,
            node=requester.peer_id,
            org=org or key("\x05").org_id,
            directions={"received"},
        )
        return req.request_id

    # -- internals -------------------------------------------------------------------
    def _secret(self) -> bytes:
        return hashlib.sha256(b"memory-grant-key\0" + str(self.peer_id).encode()).digest()

    def _hop(self, n: int, node: PeerId, org: OrgId | None, action: str) -> dict[str, Any]:
        return {"hop": n, "node": str(node), "org": str(org), "action": action, "at": self.now}

    def _new_request(
        self,
        dataset_id: DatasetId,
        purpose: str,
        days: int,
        note: str,
        *,
        node: PeerId,
        org: OrgId,
        directions: set[str],
    ) -> _Request:
        if purpose not in _PARENTS:
            raise InvalidInput(
                f"unknown purpose {purpose[:64]!r}; `datanet purposes` lists the vocabulary"
            )
        if not 1 <= days <= 3650:
            raise InvalidInput("days must be between 1 and 3650")
        verified = self.catalog.get(dataset_id)
        if verified is None:
            raise NotFound(f"no descriptor for {dataset_id}")
        self.counter += 1
        seed = f"{dataset_id}|{node}|{purpose}|{self.counter}".encode()
        request_id = hashlib.sha256(seed).hexdigest()[:32]
        route = [self._hop(0, node, org, "forward")]
        if self.gateway_down:
            raise _gateway_unreachable(self.gateway_key.peer_id)
        route += [
            self._hop(1, self.gateway_key.peer_id, self.org, "forward"),
            self._hop(2, self.peer_id, self.org, "decide"),
        ]
        req = _Request(
            request_id,
            directions,
            str(dataset_id),
            verified.descriptor.sequence,
            purpose,
            days,
            note,
            str(node),
            str(org),
            self.now,
            self.now + _DEADLINE,
            route,
        )
        self.requests[request_id] = req
        self.record(
            "request_received",
            None,
            {"request": request_id, "dataset": str(dataset_id), "from": str(node)},
        )
        self._decide_by_policy(req, verified.descriptor.access_policy, org)
        return req

    def _decide_by_policy(self, req: _Request, policy: Any, org: OrgId) -> None:
        allowed = policy.purposes
        purpose: str | None = req.purpose
        ok = not allowed
        while purpose is not None and not ok:
            ok = purpose in allowed
            purpose = _PARENTS.get(purpose)
        if policy.mode == "closed":
            self._deny(req, "dataset_closed", "", "policy")
        elif policy.allowed_orgs and org not in policy.allowed_orgs:
            self._deny(req, "org_not_allowed", "", "policy")
        elif not ok:
            self._deny(req, "purpose_not_allowed", "", "policy")
        elif req.days > policy.max_validity_days:
            self._deny(
                req,
                "validity_too_long",
                f"at most {policy.max_validity_days} days",
                "policy",
            )
        elif policy.mode == "open":
            self._grant(req, req.days, "policy")

    def _deny(self, req: _Request, reason: str, message: str, by: str) -> None:
        req.state, req.reason, req.message = "denied", reason, message
        req.decided_at, req.decided_by = self.now, by
        body = json.dumps({"denial": req.request_id, "reason": reason}, sort_keys=True).encode()
        req.denial = {
            "reason": reason,
            "explanation": DENIAL_EXPLANATIONS.get(reason, reason),
            "message": message,
            "node": str(self.peer_id),
            "org": str(self.org),
            "decided_at": self.now,
            "route": [dict(h) for h in req.route],
            "envelope": base64.b64encode(body).decode("ascii"),
        }
        self.record("decision", body, {"request": req.request_id, "reason": reason, "by": by})
        req.settle()

    def _grant(self, req: _Request, days: int, by: str) -> None:
        grant_id = hashlib.sha256(b"grant\0" + req.request_id.encode()).hexdigest()[:32]
        core = {
            "grant_id": grant_id,
            "request_id": req.request_id,
            "dataset_id": req.dataset_id,
            "sequence": req.sequence,
            "grantee_node": req.requester_node,
            "grantee_org": req.requester_org,
            "purpose": req.purpose,
            "not_before": self.now,
            "not_after": self.now + days * DAY,
            "valid_until": self.now + days * DAY,
            "issuer_node": str(self.peer_id),
            "issuer_org": str(self.org),
            "issued_at": self.now,
            "route": [dict(h) for h in req.route],
        }
        body = json.dumps(core, sort_keys=True, separators=(",", ":")).encode()
        mac = hmac.new(self._secret(), body, hashlib.sha256).hexdigest().encode()
        roles = {"issued"} | ({"received"} if "sent" in req.directions else set())
        details = {"endpoint": f"https://data.example/{req.dataset_id[-40:]}", "token": grant_id}
        self.issued[grant_id] = _Grant(core, _MAGIC + body + b"\n" + mac, roles, details)
        self.record(
            "grant",
            self.issued[grant_id].envelope,
            {"request": req.request_id, "grant": grant_id, "dataset": req.dataset_id, "by": by},
        )
        req.state, req.decided_at, req.decided_by, req.grant_id = "granted", self.now, by, grant_id
        req.settle()

    def _expire(self) -> None:
        for req in self.requests.values():
            if req.state == "pending" and self.now >= req.deadline:
                self._deny(req, "expired", "", "deadline")

    def _find(self, request_id: str, direction: str) -> _Request:
        self._expire()
        found = [r for i, r in self.requests.items() if i.startswith(request_id.lower())]
        found = [r for r in found if direction in r.directions]
        if not found or len(request_id) < 8:
            raise NotFound(f"no {direction} request {request_id[:64]}")
        if len(found) > 1:
            raise InvalidInput(f"{request_id} names {len(found)} requests; give more digits")
        return found[0]

    def _find_grant(self, grant_id: str, role: str | None = None) -> _Grant:
        found = [
            g
            for i, g in self.issued.items()
            if i.startswith(grant_id.lower()) and (role is None or role in g.roles)
        ]
        if not found or len(grant_id) < 8:
            raise NotFound(f"no grant {grant_id[:64]}")
        if len(found) > 1:
            raise InvalidInput(f"{grant_id} names {len(found)} grants; give more digits")
        return found[0]

    def _outcome(self, req: _Request, direction: str) -> dict[str, Any]:
        grant = None
        if req.grant_id is not None:
            g = self.issued[req.grant_id]
            role = "received" if direction == "sent" else "issued"
            grant = g.view(role, details=role == "received")
        return {
            "state": req.state,
            "request": req.view(direction),
            "grant": grant,
            "denial": None if req.denial is None else dict(req.denial),
        }

    async def _wait(self, req: _Request, wait: float) -> None:
        if req.state == "pending" and wait > 0:
            event = anyio.Event()
            req.waiters.append(event)
            with anyio.move_on_after(wait):
                await event.wait()

    # -- NodeAPI: access requests ----------------------------------------------------
    async def request_access(
        self, dataset_id: DatasetId, *, purpose: str, days: int, note: str, wait: float
    ) -> Mapping[str, Any]:
        req = self._new_request(
            dataset_id,
            purpose,
            days,
            note,
            node=self.peer_id,
            org=self.org_key.org_id,
            directions={"sent", "received"},
        )
        await self._wait(req, wait)
        return self._outcome(req, "sent")

    async def refresh_request(self, request_id: str, *, wait: float) -> Mapping[str, Any]:
        req = self._find(request_id, "sent")
        await self._wait(req, wait)
        self._expire()
        return self._outcome(req, "sent")

    def access_requests(
        self,
        *,
        direction: _Direction,
        state: str | None,
        dataset: DatasetId | None,
        limit: int,
    ) -> Sequence[Mapping[str, Any]]:
        self._expire()
        chosen = [
            r.view(direction)
            for r in reversed(self.requests.values())
            if direction in r.directions
            and (state is None or r.state == state)
            and (dataset is None or r.dataset_id == str(dataset))
        ]
        return chosen[:limit]

    def access_request(self, request_id: str, *, direction: _Direction) -> Mapping[str, Any]:
        return self._find(request_id, direction).view(direction)

    async def approve_request(self, request_id: str, *, days: int | None) -> Mapping[str, Any]:
        req = self._find(request_id, "received")
        if req.state != "pending":
            raise InvalidInput(f"request {req.request_id[:12]} is already {req.state}")
        if days is not None and days > req.days:
            raise InvalidInput(f"the request asked for {req.days} days; approve may only shorten")
        self._grant(req, req.days if days is None else days, "operator")
        return self._outcome(req, "received")

    async def deny_request(self, request_id: str, *, reason: str) -> Mapping[str, Any]:
        req = self._find(request_id, "received")
        if req.state != "pending":
            raise InvalidInput(f"request {req.request_id[:12]} is already {req.state}")
        self._deny(req, "denied_by_operator", reason, "operator")
        return self._outcome(req, "received")

    def grants(
        self,
        *,
        role: Literal["issued", "received"],
        dataset: DatasetId | None,
        active: bool,
        limit: int,
    ) -> Sequence[Mapping[str, Any]]:
        chosen = [
            g.view(role, details=False)
            for g in reversed(self.issued.values())
            if role in g.roles
            and (dataset is None or g.core["dataset_id"] == str(dataset))
            and (not active or (g.revoked_at is None and self.now < g.core["not_after"]))
        ]
        return chosen[:limit]

    def grant(self, grant_id: str, *, details: bool) -> Mapping[str, Any]:
        g = self._find_grant(grant_id)
        return g.view("received" if "received" in g.roles else "issued", details=details)

    def verify_grant(self, raw: bytes, *, deep: bool) -> Mapping[str, Any]:
        def invalid(code: str, message: str, view: Any = None) -> dict[str, Any]:
            error = {"code": code, "message": message}
            return {"valid": False, "deep": deep, "error": error, "grant": view}

        body, _, mac = raw.removeprefix(_MAGIC).rpartition(b"\n")
        if not raw.startswith(_MAGIC) or not body:
            return invalid("decode_error", "not a signed grant")
        try:
            core = json.loads(body)
        except ValueError:
            return invalid("decode_error", "the grant's body is not readable")
        good = hmac.new(self._secret(), body, hashlib.sha256).hexdigest().encode()
        held = self.issued.get(str(core.get("grant_id"))) if isinstance(core, dict) else None
        if not hmac.compare_digest(mac, good) or held is None:
            return invalid("bad_signature", "the grant's signature does not verify")
        view = held.view("issued", details=False)
        if self.now >= core["not_after"]:
            return invalid("record_expired", f"the grant expired at {core['not_after']}", view)
        if deep and held.revoked_at is not None:
            return invalid("grant_revoked", f"revoked: {held.revocation_reason}", view)
        return {"valid": True, "deep": deep, "error": None, "grant": view}

    async def revoke_grant(self, grant_id: str, *, reason: str) -> Mapping[str, Any]:
        g = self._find_grant(grant_id, "issued")
        if g.revoked_at is None:
            g.revoked_at, g.revocation_reason = self.now, reason
            self.record("grant_revoked", None, {"grant": g.core["grant_id"], "reason": reason})
        return g.view("issued", details=False)

    def purposes(self) -> Sequence[Mapping[str, Any]]:
        return [
            {
                "id": pid,
                "iri": f"https://w3id.org/dpv#{term}",
                "label": label,
                "description": text,
                "parent": parent,
            }
            for pid, term, label, text, parent in MEMORY_PURPOSES
        ]

    # -- NodeAPI: publications, logged --------------------------------------------
    async def publish(self, raw: bytes) -> PublishOutcome:
        outcome = await super().publish(raw)
        self.record(
            "publish",
            raw,
            {"dataset": str(outcome.dataset_id), "sequence": outcome.sequence},
        )
        return outcome

    async def deprecate(self, dataset_id: DatasetId, *, reason: str) -> PublishOutcome:
        outcome = await super().deprecate(dataset_id, reason=reason)
        self.record(
            "withdraw",
            None,
            {"dataset": str(dataset_id), "sequence": outcome.sequence, "reason": reason},
        )
        return outcome

    # -- NodeAPI: the audit log (issue 11) ---------------------------------------------
    def _head(self, *, fresh: bool) -> bytes:
        latest = self.audit.latest_head()
        if latest is None or fresh or latest.head.size != self.audit.size:
            return self.audit.sign_head(self.node_key, self.chain, self.now)
        return latest.raw

    def audit_entries(
        self, *, since: int, kind: str | None, limit: int
    ) -> Sequence[Mapping[str, Any]]:
        out = []
        for e in self.audit.entries(since, kind, limit):
            subject = e.entry.subject_hash
            record = e.entry.record
            out.append(
                {
                    "index": e.index,
                    "kind": str(e.entry.kind),
                    "timestamp": e.entry.timestamp,
                    "details": dict(e.entry.details),
                    "record": None if record is None else base64.b64encode(record).decode(),
                    "record_hash": None if subject is None else subject.hex(),
                    "leaf_hash": e.leaf_hash.hex(),
                }
            )
        return out

    def audit_head(self, *, fresh: bool) -> Mapping[str, Any]:
        raw = self._head(fresh=fresh)
        head, _ = open_tree_head(raw)
        cosigs = []
        for c in self.cosigs.get(raw, []):
            verified = verify_cosignature(c, self.trust, self.now)
            cosigs.append(
                {
                    "witness": str(verified.cosignature.witness),
                    "org": str(verified.org),
                    "at": verified.cosignature.witnessed_at,
                    "cosignature": base64.b64encode(c).decode("ascii"),
                }
            )
        return {
            **head.to_json(),
            "org": str(self.org),
            "head": base64.b64encode(raw).decode("ascii"),
            "cosignatures": cosigs,
        }

    def audit_verify(self) -> Mapping[str, Any]:
        return self.audit.verify().to_json()

    def audit_prove(self, index: int) -> Mapping[str, Any]:
        if not 0 <= index < self.audit.size:
            raise NotFound(f"the audit log has no entry {index} (size {self.audit.size})")
        raw = self._head(fresh=False)
        base = decode_receipt(self.audit.receipt(index, raw))
        receipt = make_receipt(
            base.head, base.index, base.proof, base.entry, self.cosigs.get(raw, [])
        )
        head, _ = open_tree_head(raw)
        return {
            "index": index,
            "size": head.size,
            "root": head.root.hex(),
            "receipt": base64.b64encode(receipt).decode("ascii"),
        }

    def audit_alarms(self, *, limit: int) -> Sequence[Mapping[str, Any]]:
        return [dict(a) for a in reversed(self.alarms)][:limit]

    def audit_witnessed(self) -> Sequence[Mapping[str, Any]]:
        return [dict(w) for w in self.witnessed.values()]


def _gateway_unreachable(gateway: PeerId) -> DatanetError:
    """The routing failure at hop 1, with its code (``datanet.errors`` may not name it yet)."""
    exc = PeerUnreachable(f"hop 1 (gateway {gateway}): gateway unreachable: connection refused")
    exc.code = "gateway_unreachable"
    return exc


@contextlib.asynccontextmanager
async def factory(data_dir: Path, config: Config, node_key: KeyPair) -> AsyncIterator[NodeAPI]:
    slow = float(os.environ.get("APINODE_SLOW_START", "0"))
    if slow:
        print("opening", flush=True)
        await trio.sleep(slow)
    node = AccessMemoryNode(
        node_key=node_key,
        gateway_down=os.environ.get("APINODE_GATEWAY_DOWN") == "1",
        audit_path=data_dir / "audit.sqlite",
    )
    try:
        yield node
    finally:
        node.close()


def main() -> int:
    def ready(url: str) -> None:
        print(url, flush=True)

    try:
        run_daemon(Path(sys.argv[1]), KeyPair.from_seed(b"\x01" * 32), factory, on_ready=ready)
    except DatanetError as exc:
        print(f"error {exc.code}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
