"""Access requests on a node: send them, relay them, decide them, keep the outcome.

One :class:`AccessService` per node carries out what the pure parts decide:
:func:`routing.access.next_step` says where a request goes next (or that this
node decides it), :func:`datanet.records.policy.evaluate` says what the owner
answers, and the records in :mod:`datanet.records.access` are what travels.
It plays every role a node can have on a route:

* **requester**: signs an :class:`~datanet.records.access.AccessRequest`, keeps
  it (and the private half of its reply key) in the outbox, sends it on its way
  and asks again (``status``) while the owner's operator decides;
* **relay** (a gateway): checks the request and every hop before it, appends its
  own signed trace entry, forwards it to the next hop (trying each candidate in
  turn) and checks the answer before passing it back;
* **owner** (the node that published the descriptor): evaluates the policy,
  answers at once (``open``), or queues the request for the operator
  (``request``); signs grants and denials; expires pending requests whose
  deadline passed; revokes grants.

Invariants:
* Nothing is forwarded, stored or answered before the request, every trace
  entry and (on the way back) the answer have verified; a refusal raises a
  :class:`~datanet.errors.DatanetError` whose code says why and whose message
  names the hop.
* A submitted request id is handled once per node (:class:`~routing.access.ReplayGuard`
  in memory, the owner's inbox on disk): a replay is refused and changes nothing.
* Private access details are sealed to the requester's reply key; relays never
  see them.
* With an audit trail (:mod:`datanet.node.audit`), every hop logs a submission
  before it passes the answer back: relays ``request_received`` /
  ``request_forwarded`` / ``request_answered`` in one batch, the owner the same
  around its decision entry (``grant`` holding the signed grant, ``decision``
  holding the signed denial, or the request when it is queued), operators'
  ``approval`` / ``denial``, revocations ``grant_revoked``. The owner's answer
  carries a receipt of the decision entry; every hop on the way back verifies it
  and checks that its entry is about this request (a bad one is refused like a
  bad grant); the requester logs it (``request_answered``) before returning it.
  Status queries are not logged; their answers carry a fresh receipt of the
  same decision entry. Nothing private is logged: reply secrets and decrypted
  details never are.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
import tomllib
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import trio

from datanet.errors import (
    ERRORS_BY_CODE,
    Conflict,
    DatanetError,
    InvalidInput,
    NotFound,
    RequestExpired,
    ScopeError,
    VerificationError,
)
from datanet.node.audit import AuditTrail, PendingEntry
from datanet.p2p import AccessTransport
from datanet.p2p._errors import RemoteError
from datanet.records.access import (
    DENIAL_REASONS,
    AccessRequest,
    Denial,
    Grant,
    GrantRevocation,
    TraceEntry,
    VerifiedRequest,
    decode_grant_unverified,
    open_denial,
    open_request,
    open_trace_entry,
    request_id,
    sign_denial,
    sign_grant,
    sign_grant_revocation,
    sign_request,
    sign_trace_entry,
    verify_denial,
    verify_grant,
    verify_request,
    verify_trace,
)
from datanet.records.audit import EntryKind, JsonValue, verify_receipt
from datanet.records.descriptor import VerifiedDescriptor
from datanet.records.ids import DatasetId
from datanet.records.ledger import org_record_key
from datanet.records.policy import evaluate
from datanet.records.purposes import PURPOSES, canonical_purpose
from datanet.records.sealed import new_reply_key, open_sealed, seal_to
from datanet.store.access import AccessStore, GrantRow, IncomingRow, OutgoingRow
from datanet.store.db import Storage
from identity.certs import MembershipCertificate, Role, TrustStore
from identity.encoding import pack, unpack_map
from identity.keys import KeyPair, OrgId, PeerId
from identity.keystore import read_at_most
from identity.orgs import decode_org_record
from routing.access import (
    MAX_HOPS,
    Decide,
    Failover,
    Forward,
    Hop,
    OrgRoute,
    Refuse,
    ReplayGuard,
    Situation,
    next_step,
)

__all__ = ["DEFAULT_DEADLINE", "AccessService"]

log = logging.getLogger("datanet.access")

#: How long a request waits for the owner's decision unless asked otherwise: a week.
DEFAULT_DEADLINE = 7 * 86400
#: How often the owner denies pending requests whose deadline passed.
EXPIRY_INTERVAL = 30.0
#: ``--wait`` asks the owner again after 0.5 s, doubling up to this.
MAX_POLL_INTERVAL = 5.0
_MAX_DETAILS_FILE = 256 * 1024
#: Routes of sent requests remembered for display (the outbox keeps the rest).
_MAX_ROUTES_KEPT = 1024
#: Decisions whose audit entry index is remembered (older ones are looked up in the log).
_MAX_DECISIONS_KEPT = 4096
#: Operator reason text kept in an audit entry (UTF-8 bytes).
_MAX_AUDIT_REASON = 512

State = Literal["granted", "denied", "pending"]


@dataclass(frozen=True)
class _Answer:
    """A verified answer from the owner, as a hop passes it back."""

    state: State
    grant: bytes | None
    denial: bytes | None
    trace: tuple[bytes, ...]
    #: The owner's audit receipt of its decision entry (None: the owner keeps no log).
    receipt: bytes | None = None
    #: The next hop that answered, and the leg (set by the hop that forwarded).
    via: PeerId | None = None
    leg: str | None = None

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "trace": list(self.trace)}
        if self.grant is not None:
            out["grant"] = self.grant
        if self.denial is not None:
            out["denial"] = self.denial
        if self.receipt is not None:
            out["receipt"] = self.receipt
        return out


def _audit_text(text: str) -> str:
    """Operator text for an audit entry: no control characters, bounded."""
    clean = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    return clean.encode("utf-8")[:_MAX_AUDIT_REASON].decode("utf-8", "ignore")


def _error(code: str, message: str) -> DatanetError:
    """The datanet error for a refusal ``code`` (a routing code or a remote error's)."""
    if code == "expired":
        return RequestExpired(message)
    cls = ERRORS_BY_CODE.get(code, DatanetError)
    return cls(message)


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def route_json(trace: Sequence[bytes]) -> list[dict[str, Any]]:
    """The route of a trace for people (the entries were verified when they arrived)."""
    out = []
    for raw in trace:
        try:
            entry = open_trace_entry(raw)[0]
        except DatanetError:
            continue
        out.append(
            {
                "hop": entry.hop,
                "node": str(entry.node),
                "org": str(entry.org),
                "action": entry.action,
                "at": entry.at,
            }
        )
    return out


class AccessService:
    """Access requests for one node (see the module docstring).

    Args:
        key: the node's key; chain: its membership chain (one certificate).
        transport: the access protocol over the node's host.
        store: the access database.
        storage: the node database (org records are read from its ledger rows).
        trust: the trust store every record is verified against.
        descriptor_of: the node's current descriptor of a dataset (raises
            NotFound / DatasetWithdrawn as ``Node.resolve`` does).
        addrs_of: addresses to dial a peer at, when known (for internal hops).
        publish: publishes a signed ledger record (grant revocations).
        revoked: grant ids whose revocation this node holds.
        details_file: the optional ``access-details.toml``.
        clock: wall-clock Unix seconds.
        audit: the node's audit trail; None: nothing is logged and answers carry no receipt.
    """

    def __init__(
        self,
        *,
        key: KeyPair,
        chain: Sequence[bytes],
        transport: AccessTransport,
        store: AccessStore,
        storage: Storage,
        trust: TrustStore,
        descriptor_of: Callable[[DatasetId], Awaitable[VerifiedDescriptor]],
        addrs_of: Callable[[PeerId], Awaitable[list[str]]],
        publish: Callable[[bytes], Awaitable[Any]],
        revoked: Callable[[], frozenset[bytes]],
        details_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        audit: AuditTrail | None = None,
    ) -> None:
        self._key = key
        self._audit = audit
        # request id -> the index of its newest decision entry in the audit log
        self._decision_index: OrderedDict[bytes, int] = OrderedDict()
        self._chain = tuple(chain)
        self._transport = transport
        self.store = store
        self._storage = storage
        self._trust = trust
        self._descriptor_of = descriptor_of
        self._addrs_of = addrs_of
        self._publish = publish
        self._revoked = revoked
        self._details_file = details_file
        self._clock = clock
        self._replays = ReplayGuard()
        # The route each sent request took, as its last answer told (for display).
        self._routes: dict[bytes, tuple[bytes, ...]] = {}
        self._cert: MembershipCertificate | None = None
        self.counters = {"relayed": 0, "decided": 0, "refused": 0, "sent": 0}

    # -- who am I ---------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _certificate(self) -> MembershipCertificate:
        """This node's current certificate (refuses every role if none is valid)."""
        if not self._chain:
            raise ScopeError("this node holds no membership certificate; it cannot take part")
        if self._cert is None:
            self._cert = self._trust.verify_chain(self._chain, now=self._now())
        return self._cert

    def _me(self) -> Hop:
        return Hop(self._key.peer_id, self._certificate().org)

    def _has_role(self, role: Role) -> bool:
        try:
            return role in self._certificate().roles
        except DatanetError:
            return False

    def _org_route(self, org: OrgId) -> tuple[OrgRoute, dict[bytes, tuple[str, ...]]]:
        """What ``org``'s org record says: its gateways (and their addresses), egress."""
        row = self._storage.ledger_record(org_record_key(org))
        if row is None:
            return OrgRoute(org, (), False), {}
        try:
            record = decode_org_record(row.raw)
        except DatanetError:
            return OrgRoute(org, (), False), {}
        if record.expires <= self._now():
            return OrgRoute(org, (), False), {}
        addrs = {g.peer.to_bytes(): tuple(g.addrs) for g in record.gateways}
        return OrgRoute(org, tuple(g.peer for g in record.gateways), record.egress), addrs

    # -- the audit trail --------------------------------------------------------------

    def _log(self, entries: Sequence[PendingEntry]) -> list[int]:
        """Append ``entries`` durably in one transaction ([] without an audit trail)."""
        if self._audit is None or not entries:
            return []
        return self._audit.record_many(entries)

    def _log_quietly(self, entries: Sequence[PendingEntry]) -> None:
        """Log on a path that already fails: a logging error must not hide the first one."""
        try:
            self._log(entries)
        except DatanetError as exc:
            log.warning("audit logging failed", extra={"kv": {"error": str(exc)}})

    @staticmethod
    def _entry(
        kind: EntryKind, rid: bytes, dataset: str, record: bytes | None, at: int, **more: JsonValue
    ) -> PendingEntry:
        details: dict[str, JsonValue] = {"request": rid.hex(), "dataset": dataset, **more}
        return PendingEntry(kind, record, details, at)

    def _remember_decision(self, rid: bytes, index: int) -> None:
        self._decision_index[rid] = index
        self._decision_index.move_to_end(rid)
        while len(self._decision_index) > _MAX_DECISIONS_KEPT:
            self._decision_index.popitem(last=False)

    def _decision_entry(self, rid: bytes) -> int | None:
        """The index of the newest decision entry about ``rid`` (None: none logged)."""
        if self._audit is None:
            return None
        index = self._decision_index.get(rid)
        if index is None:
            found = self._audit.last_of(
                [EntryKind.GRANT, EntryKind.DECISION],
                lambda e: e.details.get("request") == rid.hex(),
            )
            if found is None:
                return None
            index = found.index
            self._remember_decision(rid, index)
        return index

    def _receipt(self, index: int | None) -> bytes | None:
        """A receipt of decision entry ``index`` (None without a trail, or if none can be made)."""
        if self._audit is None or index is None:
            return None
        try:
            return self._audit.receipt(index)
        except DatanetError as exc:
            log.warning("no audit receipt for a decision", extra={"kv": {"error": str(exc)}})
            return None

    def _check_receipt(self, raw: object, rid: bytes, answer: _Answer, where: str) -> None:
        """Verify the owner's receipt an answer carries and that its entry is this decision."""
        if not isinstance(raw, bytes):
            raise VerificationError(f"{where} carries a malformed audit receipt")
        try:
            entry = verify_receipt(raw, self._trust, self._now()).entry
        except DatanetError as exc:
            raise VerificationError(
                f"{where} carries an audit receipt that does not verify: {exc}"
            ) from exc
        if entry.details.get("request") != rid.hex():
            raise VerificationError(f"{where} carries an audit receipt about another request")
        decision = answer.grant or answer.denial
        expected = EntryKind.GRANT if answer.state == "granted" else EntryKind.DECISION
        if entry.kind is not expected or entry.details.get("state") != answer.state:
            raise VerificationError(
                f"{where} carries an audit receipt of a {entry.kind} entry, not of its decision"
            )
        if decision is not None and not entry.refers_to(decision):
            raise VerificationError(
                f"{where} carries an audit receipt of another {answer.state} decision"
            )

    # -- running ----------------------------------------------------------------------

    def start(self) -> None:
        """Serve the access protocol."""
        self._transport.serve(self._handle)

    async def run(self) -> None:
        """Deny pending requests whose deadline passed, every ``EXPIRY_INTERVAL`` seconds."""
        while True:
            try:
                self.expire_due()
            except DatanetError as exc:
                log.warning("expiring access requests failed", extra={"kv": {"error": str(exc)}})
            await trio.sleep(EXPIRY_INTERVAL)

    def expire_due(self) -> int:
        """Deny (reason ``expired``) every pending request past its deadline; returns how many."""
        now = self._now()
        count = 0
        audit: list[tuple[bytes, PendingEntry]] = []
        for row in self.store.due(now):
            denial = self._sign_denial(
                row.request_id,
                DatasetId.parse(row.dataset),
                reason="expired",
                message="the request's deadline passed before an operator decided it; ask again",
                trace=row.trace,
                now=now,
            )
            try:
                self.store.decide(
                    row.request_id,
                    state="denied",
                    decision=denial,
                    reason="expired",
                    message="the deadline passed before an operator decided",
                    decided_by="deadline",
                    at=now,
                    grant_id=None,
                )
                count += 1
            except DatanetError:
                continue  # decided meanwhile
            entry = self._entry(
                EntryKind.DECISION,
                row.request_id,
                row.dataset,
                denial,
                now,
                state="denied",
                by="deadline",
                reason="expired",
            )
            audit.append((row.request_id, entry))
        for (rid, _), index in zip(audit, self._log([e for _, e in audit]), strict=False):
            self._remember_decision(rid, index)
        return count

    # -- the requester ----------------------------------------------------------------

    async def request_access(
        self, dataset_id: DatasetId, *, purpose: str, days: int, note: str, wait: float
    ) -> Mapping[str, Any]:
        """Ask the owner of ``dataset_id`` for access; see the API's ``/access/request``.

        Raises:
            InvalidInput: unknown purpose, days out of range, a bad note.
            RoleNotGranted / ScopeError: this node may not request.
            NotFound, DatasetWithdrawn: the dataset is not known here.
            The routing errors (no_route, gateway_unreachable, …) naming the hop.
        """
        cert = self._certificate()
        if Role.REQUESTER not in cert.roles:
            raise ScopeError(
                f"this node's certificate (serial {cert.serial}) lacks the requester role; "
                "ask your organization's operator for one"
            )
        verified = await self._descriptor_of(dataset_id)
        now = self._now()
        secret, public = new_reply_key()
        request = AccessRequest(
            dataset_id=dataset_id,
            sequence=verified.descriptor.sequence,
            purpose=canonical_purpose(purpose),
            validity_days=days,
            node=self._key.peer_id,
            org=cert.org,
            nonce=secrets.token_bytes(16),
            created=now,
            deadline=now + DEFAULT_DEADLINE,
            reply_key=public,
            note=note,
        )
        raw = sign_request(request, self._key, self._chain)
        rid = request_id(raw)
        self.store.add_outgoing(
            OutgoingRow(
                request_id=rid,
                dataset=str(dataset_id),
                purpose=request.purpose,
                validity_days=days,
                note=note,
                created=now,
                deadline=request.deadline,
                state="pending",
                request=raw,
                reply_secret=secret,
                decision=None,
                reason=None,
                message="",
                updated_at=now,
            )
        )
        self.counters["sent"] += 1
        try:
            answer = await self._route("submit", raw, ())
        except DatanetError as exc:
            self.store.update_outgoing(
                rid, state="failed", decision=None, reason=exc.code, message=str(exc), at=now
            )
            raise
        self._record_answer(rid, answer)
        self._log_sent(rid, str(dataset_id), answer, now=now, submitted=True)
        if answer.state == "pending" and wait > 0:
            return await self.refresh_request(rid.hex(), wait=wait)
        return self._outcome_sent(rid, answer)

    async def refresh_request(self, request_id_text: str, *, wait: float) -> Mapping[str, Any]:
        """Ask the owner again about a sent request, for up to ``wait`` seconds."""
        row = self.store.find_outgoing(request_id_text)
        if row.state in ("granted", "denied") and row.decision is not None:
            # Decisions are final: answer from the outbox, the network has nothing newer.
            grant = row.decision if row.state == "granted" else None
            denial = row.decision if row.state == "denied" else None
            final: State = "granted" if row.state == "granted" else "denied"
            return self._outcome_sent(row.request_id, _Answer(final, grant, denial, ()))
        give_up = trio.current_time() + max(0.0, wait)
        interval = 0.5
        previous = row.state
        while True:
            answer = await self._route("status", row.request, ())
            self._record_answer(row.request_id, answer)
            if answer.state != previous:  # the requester logs each new state it learns
                self._log_sent(row.request_id, row.dataset, answer, now=self._now())
                previous = answer.state
            if answer.state != "pending" or trio.current_time() + interval > give_up:
                return self._outcome_sent(row.request_id, answer)
            await trio.sleep(interval)
            interval = min(MAX_POLL_INTERVAL, interval * 2)

    def _log_sent(
        self, rid: bytes, dataset: str, answer: _Answer, *, now: int, submitted: bool = False
    ) -> None:
        """The requester logs where its request went and the answer's receipt (durably)."""
        via = None if answer.via is None else str(answer.via)
        entries = []
        if submitted and answer.via is not None:
            entries.append(
                self._entry(
                    EntryKind.REQUEST_FORWARDED, rid, dataset, None, now, to=via, leg=answer.leg
                )
            )
        entries.append(
            self._entry(
                EntryKind.REQUEST_ANSWERED,
                rid,
                dataset,
                answer.receipt,
                self._now(),
                state=answer.state,
                via=via,
                receipt=answer.receipt is not None,
            )
        )
        self._log(entries)

    def _record_answer(self, rid: bytes, answer: _Answer) -> None:
        reason: str | None = None
        message = ""
        if answer.denial is not None:
            denial = open_denial(answer.denial)[0]  # verified when the answer arrived
            reason, message = denial.reason, denial.message
        decision = answer.grant or answer.denial
        self.store.update_outgoing(
            rid,
            state=answer.state,
            decision=decision,
            reason=reason,
            message=message,
            at=self._now(),
        )
        if answer.trace:
            self._routes[rid] = answer.trace
            while len(self._routes) > _MAX_ROUTES_KEPT:  # oldest first (insertion order)
                del self._routes[next(iter(self._routes))]

    # -- routing (every role) -----------------------------------------------------------

    async def _handle(self, frame: Any, from_peer: bytes) -> Any:
        """One inbound hop: check, then decide or forward; answers the previous hop."""
        try:
            if not isinstance(frame, dict):
                raise InvalidInput("an access frame must be a map")
            op = frame.get("op")
            raw = frame.get("req")
            trace = frame.get("trace")
            if op not in ("submit", "status"):
                raise InvalidInput(f"unknown access operation {str(op)[:20]!r}")
            if not isinstance(raw, bytes) or not isinstance(trace, list):
                raise InvalidInput("an access frame carries the request bytes and a trace list")
            if len(trace) > MAX_HOPS:
                raise _error(
                    "hop_limit", f"the trace has {len(trace)} hops; the limit is {MAX_HOPS}"
                )
            if not all(isinstance(t, bytes) for t in trace):
                raise InvalidInput("a trace is a list of signed entries (bytes)")
            answer = await self._route(op, raw, tuple(trace), PeerId.from_bytes(from_peer))
        except DatanetError:
            self.counters["refused"] += 1
            raise
        return answer.frame()

    async def _route(
        self,
        op: str,
        raw: bytes,
        trace: tuple[bytes, ...],
        from_peer: PeerId | None = None,
    ) -> _Answer:
        now = self._now()
        verified = verify_request(raw, self._trust, now, at=now if op == "status" else None)
        request = verified.request
        hops = verify_trace(verified, trace, self._trust, now)
        if (
            op == "submit"
            and from_peer is not None
            and not self._replays.check_and_remember(verified.id, request.deadline, now)
        ):
            raise _error(
                "replayed_request",
                f"request {verified.id.hex()[:16]} was already submitted here; "
                "a new request needs a new nonce",
            )
        descriptor = await self._held_descriptor(request.dataset_id)
        requester_route, _ = self._org_route(request.org)
        target_route, target_addrs = self._org_route(request.dataset_id.org)
        me = self._me()
        situation = Situation(
            me=me,
            i_am_gateway=self._has_role(Role.GATEWAY),
            i_can_decide=self._can_decide(request.dataset_id, descriptor),
            requester=Hop(request.node, request.org),
            requester_route=requester_route,
            target_org=request.dataset_id.org,
            target_route=target_route,
            publisher=None if descriptor is None else descriptor.descriptor.publisher_node,
            trace=tuple(Hop(h.entry.node, h.entry.org) for h in hops),
            from_peer=from_peer,
            deadline=request.deadline if op == "submit" else now + 60,
            now=now,
        )
        step = next_step(situation)
        if isinstance(step, Refuse):
            raise _error(step.code, f"{me.node} ({me.org}) refused the request: {step.message}")
        if isinstance(step, Decide):
            return await self._decide(
                op, verified, trace=trace, descriptor=descriptor, now=now, from_peer=from_peer
            )
        self.counters["relayed"] += 1
        my_addrs = dict(target_addrs)
        my_addrs.update(self._org_route(me.org)[1])
        return await self._forward(
            op,
            raw,
            rid=verified.id,
            dataset=str(request.dataset_id),
            trace=trace,
            step=step,
            known_addrs=my_addrs,
            now=now,
            from_peer=from_peer,
        )

    async def _held_descriptor(self, dataset_id: DatasetId) -> VerifiedDescriptor | None:
        try:
            return await self._descriptor_of(dataset_id)
        except DatanetError:
            return None

    def _can_decide(self, dataset_id: DatasetId, descriptor: VerifiedDescriptor | None) -> bool:
        """Only the node that published the descriptor decides (it holds the queue)."""
        if descriptor is None or descriptor.descriptor.publisher_node != self._key.peer_id:
            return False
        try:
            cert = self._certificate()
        except DatanetError:
            return False
        return cert.org == dataset_id.org and Role.PUBLISHER in cert.roles

    def _sign_trace(
        self,
        rid: bytes,
        trace: tuple[bytes, ...],
        action: Literal["forward", "decide"],
        nxt: PeerId | None,
        now: int,
    ) -> bytes:
        prev = hashlib.sha256(trace[-1]).digest() if trace else rid
        entry = TraceEntry(
            request_id=rid,
            hop=len(trace),
            node=self._key.peer_id,
            org=self._certificate().org,
            prev=prev,
            at=now,
            action=action,
            next=nxt,
        )
        return sign_trace_entry(entry, self._key, self._chain)

    async def _forward(
        self,
        op: str,
        raw: bytes,
        *,
        rid: bytes,
        dataset: str,
        trace: tuple[bytes, ...],
        step: Forward,
        known_addrs: Mapping[bytes, tuple[str, ...]],
        now: int,
        from_peer: PeerId | None,
    ) -> _Answer:
        origin = from_peer is None
        me_org = self._certificate().org
        failover = Failover(step.candidates, me_org, step.leg)
        hops_left = MAX_HOPS - len(trace)
        # A relay logs a submission it accepted, where it went and what came back in
        # one durable batch, before it passes the answer (or the refusal) back.
        logged = not origin and op == "submit" and self._audit is not None
        audit: list[PendingEntry] = []
        if logged:
            audit.append(
                self._entry(
                    EntryKind.REQUEST_RECEIVED, rid, dataset, raw, now, **{"from": str(from_peer)}
                )
            )
        while (peer := failover.next()) is not None:
            # A relay signs a trace entry naming the next hop; the requester's own
            # signature is the request itself.
            entries = trace
            if not origin:
                entries = (*trace, self._sign_trace(rid, trace, "forward", peer, now))
            addrs = list(known_addrs.get(peer.to_bytes(), ())) or await self._addrs_of(peer)
            forwarded = self._entry(
                EntryKind.REQUEST_FORWARDED, rid, dataset, None, now, to=str(peer), leg=step.leg
            )
            try:
                frame = await self._transport.send(
                    peer,
                    {"op": op, "req": raw, "trace": list(entries)},
                    hops_left=hops_left,
                    addrs=addrs,
                )
            except RemoteError as exc:
                # A hop behind it refused: that is the answer, not a reason to fail over.
                if logged:
                    self._log_quietly([*audit, forwarded, self._refused(rid, dataset, exc)])
                raise _error(exc.remote_code, str(exc)) from None
            except DatanetError as exc:
                failover.failed(peer, str(exc))
                if logged:
                    audit.append(replace(forwarded, details={**forwarded.details, "ok": False}))
                continue
            try:
                answer = self._check_answer(frame, rid, peer)
            except DatanetError as exc:
                if logged:
                    self._log_quietly([*audit, forwarded, self._refused(rid, dataset, exc)])
                raise
            if logged:
                answered = self._entry(
                    EntryKind.REQUEST_ANSWERED,
                    rid,
                    dataset,
                    None,
                    self._now(),
                    state=answer.state,
                    to=str(from_peer),
                )
                self._log([*audit, forwarded, answered])
            return replace(answer, via=peer, leg=step.leg)
        error = _error("gateway_unreachable", failover.error_message())
        if logged:
            self._log_quietly([*audit, self._refused(rid, dataset, error)])
        raise error

    def _refused(self, rid: bytes, dataset: str, exc: DatanetError | RemoteError) -> PendingEntry:
        """The ``request_answered`` entry of a relay that passes a refusal back."""
        code = exc.remote_code if isinstance(exc, RemoteError) else exc.code
        if code not in ERRORS_BY_CODE and code != "expired":  # a peer's text: keep known codes only
            code = "remote_error"
        return self._entry(
            EntryKind.REQUEST_ANSWERED, rid, dataset, None, self._now(), state="refused", code=code
        )

    def _check_answer(self, frame: Any, rid: bytes, peer: PeerId) -> _Answer:
        """Verify the next hop's answer before passing it back (never forward junk)."""
        where = f"the answer from {peer}"
        if not isinstance(frame, dict):
            raise VerificationError(f"{where} is not a map")
        state = frame.get("state")
        trace = frame.get("trace", [])
        if state not in ("granted", "denied", "pending"):
            raise VerificationError(f"{where} has an unknown state {str(state)[:20]!r}")
        if not isinstance(trace, list) or len(trace) > MAX_HOPS + 1:
            raise VerificationError(f"{where} carries a malformed trace")
        if not all(isinstance(t, bytes) for t in trace):
            raise VerificationError(f"{where} carries a malformed trace")
        if state == "granted":
            grant = self._decision(frame.get("grant"), "grant", rid, where)
            answer = _Answer("granted", grant, None, tuple(trace))
        elif state == "denied":
            denial = self._decision(frame.get("denial"), "denial", rid, where)
            answer = _Answer("denied", None, denial, tuple(trace))
        else:
            answer = _Answer("pending", None, None, tuple(trace))
        receipt = frame.get("receipt")
        if receipt is None:  # an owner that keeps no audit log
            return answer
        self._check_receipt(receipt, rid, answer, where)
        return replace(answer, receipt=receipt)

    def _decision(
        self, raw: object, kind: Literal["grant", "denial"], rid: bytes, where: str
    ) -> bytes:
        """The signed grant or denial an answer carries, verified and for this request."""
        if not isinstance(raw, bytes):
            raise VerificationError(f"{where} says {kind} but carries none")
        try:
            if kind == "grant":
                about = verify_grant(raw, self._trust, self._now()).grant.request_id
            else:
                about = verify_denial(raw, self._trust, self._now()).denial.request_id
        except DatanetError as exc:
            raise VerificationError(
                f"{where} carries a {kind} that does not verify: {exc}"
            ) from exc
        if about != rid:
            raise VerificationError(f"{where} carries a {kind} for another request")
        return raw

    # -- the owner ------------------------------------------------------------------------

    async def _decide(
        self,
        op: str,
        verified: VerifiedRequest,
        *,
        trace: tuple[bytes, ...],
        descriptor: VerifiedDescriptor | None,
        now: int,
        from_peer: PeerId | None = None,
    ) -> _Answer:
        rid, raw = verified.id, verified.raw
        held = self.store.incoming(rid)
        if op == "status":
            if held is None:
                raise NotFound(
                    f"the owner has no record of request {rid.hex()[:16]}; submit it again"
                )
            # A stored decision answered again: a fresh receipt of the same entry.
            answer = self._answer_of(held)
            return replace(answer, receipt=self._receipt(self._decision_entry(rid)))
        if held is not None:
            raise _error(
                "replayed_request",
                f"request {rid.hex()[:16]} was already submitted; its state is {held.state}",
            )
        self.counters["decided"] += 1
        request = verified.request
        full_trace = (*trace, self._sign_trace(rid, trace, "decide", None, now))
        row = IncomingRow(
            request_id=rid,
            dataset=str(request.dataset_id),
            requester_node=str(request.node),
            requester_org=str(request.org),
            purpose=request.purpose,
            validity_days=request.validity_days,
            note=request.note,
            received_at=now,
            deadline=request.deadline,
            state="pending",
            request=raw,
            trace=full_trace,
            decision=None,
            reason=None,
            message="",
            decided_at=None,
            decided_by=None,
            grant_id=None,
        )
        if not self.store.add_incoming(row):
            raise _error("replayed_request", f"request {rid.hex()[:16]} was already submitted")
        # The owner logs receiving, its decision and answering in one durable batch,
        # then answers with a receipt of the decision entry.
        sender = "self" if from_peer is None else str(from_peer)
        received = self._entry(
            EntryKind.REQUEST_RECEIVED, rid, row.dataset, raw, now, **{"from": sender}
        )

        def answered(state: State) -> PendingEntry:
            return self._entry(
                EntryKind.REQUEST_ANSWERED, rid, row.dataset, None, now, state=state, to=sender
            )

        if descriptor is None:
            return self._deny(
                row,
                "dataset_unknown",
                "this node no longer holds the dataset",
                now,
                before=[received],
                after=[answered("denied")],
                with_receipt=True,
            )
        verdict = evaluate(
            descriptor.descriptor.access_policy,
            current_sequence=descriptor.descriptor.sequence,
            request_sequence=request.sequence,
            org=request.org,
            purpose=request.purpose,
            validity_days=request.validity_days,
            deadline=request.deadline,
            now=now,
        )
        if verdict.outcome == "deny":
            assert verdict.reason is not None
            return self._deny(
                row,
                verdict.reason,
                verdict.message,
                now,
                by="policy",
                before=[received],
                after=[answered("denied")],
                with_receipt=True,
            )
        if verdict.outcome == "grant":
            return self._grant(
                row,
                descriptor,
                request.validity_days,
                now,
                by="policy",
                before=[received],
                after=[answered("granted")],
                with_receipt=True,
            )
        log.info(
            "access request queued",
            extra={"kv": {"request": rid.hex()[:16], "dataset": row.dataset}},
        )
        queued = self._entry(
            EntryKind.DECISION, rid, row.dataset, raw, now, state="pending", by="policy"
        )
        indexes = self._log([received, queued, answered("pending")])
        receipt = None
        if indexes:
            self._remember_decision(rid, indexes[1])
            receipt = self._receipt(indexes[1])
        return _Answer("pending", None, None, full_trace, receipt)

    def _answer_of(self, row: IncomingRow) -> _Answer:
        if row.state == "granted":
            return _Answer("granted", row.decision, None, row.trace)
        if row.state == "denied":
            return _Answer("denied", None, row.decision, row.trace)
        return _Answer("pending", None, None, row.trace)

    def _sign_denial(
        self,
        rid: bytes,
        dataset_id: DatasetId,
        *,
        reason: str,
        message: str,
        trace: Sequence[bytes],
        now: int,
    ) -> bytes:
        denial = Denial(
            request_id=rid,
            dataset_id=dataset_id,
            reason=reason,
            message=message[:256],
            node=self._key.peer_id,
            org=self._certificate().org,
            decided_at=now,
            trace=tuple(trace),
        )
        return sign_denial(denial, self._key, self._chain)

    def _deny(
        self,
        row: IncomingRow,
        reason: str,
        message: str,
        now: int,
        *,
        by: Literal["policy", "operator", "deadline"] = "policy",
        before: Sequence[PendingEntry] = (),
        after: Sequence[PendingEntry] = (),
        with_receipt: bool = False,
    ) -> _Answer:
        raw = self._sign_denial(
            row.request_id,
            DatasetId.parse(row.dataset),
            reason=reason,
            message=message,
            trace=row.trace,
            now=now,
        )
        self.store.decide(
            row.request_id,
            state="denied",
            decision=raw,
            reason=reason,
            message=message,
            decided_by=by,
            at=now,
            grant_id=None,
        )
        entry = self._entry(
            EntryKind.DECISION,
            row.request_id,
            row.dataset,
            raw,
            now,
            state="denied",
            by=by,
            reason=reason,
        )
        receipt = self._log_decision(row.request_id, before, entry, after, with_receipt)
        return _Answer("denied", None, raw, row.trace, receipt)

    def _log_decision(
        self,
        rid: bytes,
        before: Sequence[PendingEntry],
        entry: PendingEntry,
        after: Sequence[PendingEntry],
        with_receipt: bool,
    ) -> bytes | None:
        """Log a decision entry with what surrounds it; a receipt of it when asked."""
        indexes = self._log([*before, entry, *after])
        if not indexes:
            return None
        index = indexes[len(before)]
        self._remember_decision(rid, index)
        return self._receipt(index) if with_receipt else None

    def _details(self, descriptor: VerifiedDescriptor, grant_id: bytes, not_after: int) -> bytes:
        """What the grantee learns, sealed to its reply key: an endpoint and a fresh token."""
        desc = descriptor.descriptor
        details: dict[str, Any] = {
            "dataset_id": str(desc.dataset_id),
            "grant_id": grant_id.hex(),
            "token": secrets.token_urlsafe(32),
            "expires": not_after,
        }
        urls = [d.access for d in desc.distributions if d.access != "request"]
        if urls:
            details["endpoint"] = urls[0]
        details.update(self._configured_details(str(desc.dataset_id)))
        return pack(details)

    def _configured_details(self, dataset_id: str) -> dict[str, Any]:
        """The operator's ``access-details.toml`` entry for ``dataset_id`` (text values)."""
        path = self._details_file
        if path is None or not path.is_file():
            return {}
        try:
            with path.open("rb") as fh:
                data = read_at_most(fh, _MAX_DETAILS_FILE)
            if len(data) > _MAX_DETAILS_FILE:
                log.warning("access details file is larger than 256 KiB; ignored")
                return {}
            doc = tomllib.loads(data.decode("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            log.warning("access details file unusable", extra={"kv": {"error": str(exc)}})
            return {}
        entry = doc.get(dataset_id)
        if not isinstance(entry, dict):
            return {}
        return {str(k)[:64]: str(v)[:1024] for k, v in entry.items() if isinstance(v, str)}

    def _grant(
        self,
        row: IncomingRow,
        descriptor: VerifiedDescriptor,
        days: int,
        now: int,
        *,
        by: Literal["policy", "operator"],
        before: Sequence[PendingEntry] = (),
        after: Sequence[PendingEntry] = (),
        with_receipt: bool = False,
    ) -> _Answer:
        verified = verify_request(row.request, self._trust, now, at=now)
        request = verified.request
        grant_id = secrets.token_bytes(16)
        cert = self._certificate()
        not_after = min(now + days * 86400, cert.not_after)
        sealed = seal_to(
            request.reply_key,
            self._details(descriptor, grant_id, not_after),
            row.request_id,
        )
        grant = Grant(
            grant_id=grant_id,
            request=row.request,
            trace=row.trace,
            dataset_id=request.dataset_id,
            sequence=request.sequence,
            grantee_node=request.node,
            grantee_org=request.org,
            purpose=request.purpose,
            not_before=now,
            not_after=not_after,
            issuer=self._key.peer_id,
            issued_at=now,
            sealed_details=sealed,
        )
        raw = sign_grant(grant, self._key, self._chain)
        self.store.add_grant(
            GrantRow(
                grant_id=grant_id,
                request_id=row.request_id,
                dataset=row.dataset,
                grantee_node=row.requester_node,
                grantee_org=row.requester_org,
                purpose=row.purpose,
                not_before=now,
                not_after=not_after,
                issued_at=now,
                grant=raw,
                revoked_at=None,
                revocation=None,
                revocation_reason="",
            )
        )
        self.store.decide(
            row.request_id,
            state="granted",
            decision=raw,
            reason=None,
            message="",
            decided_by=by,
            at=now,
            grant_id=grant_id,
        )
        entry = self._entry(
            EntryKind.GRANT,
            row.request_id,
            row.dataset,
            raw,
            now,
            state="granted",
            by=by,
            grant=grant_id.hex(),
            grantee_org=row.requester_org,
            not_after=not_after,
        )
        receipt = self._log_decision(row.request_id, before, entry, after, with_receipt)
        return _Answer("granted", raw, None, row.trace, receipt)

    async def approve(self, request_id_text: str, *, days: int | None) -> Mapping[str, Any]:
        """The operator grants a pending request (optionally for fewer days than asked)."""
        row = self._pending(request_id_text)
        now = self._now()
        if now >= row.deadline:
            self.expire_due()
            raise RequestExpired(
                f"request {row.request_id.hex()[:16]} expired at its deadline; "
                "the requester must ask again"
            )
        if days is not None and not 1 <= days <= row.validity_days:
            raise InvalidInput(
                f"--days must be between 1 and the {row.validity_days} days the requester asked for"
            )
        descriptor = await self._descriptor_of(DatasetId.parse(row.dataset))
        granted = days or row.validity_days
        approval = self._entry(
            EntryKind.APPROVAL, row.request_id, row.dataset, row.request, now, days=granted
        )
        self._grant(row, descriptor, granted, now, by="operator", before=[approval])
        return self._outcome_received(row.request_id)

    def deny(self, request_id_text: str, *, reason: str) -> Mapping[str, Any]:
        """The operator denies a pending request, with a reason the requester reads."""
        row = self._pending(request_id_text)
        if not reason.strip():
            raise InvalidInput("a denial needs a reason the requester can act on (--reason)")
        now = self._now()
        denial = self._entry(
            EntryKind.DENIAL,
            row.request_id,
            row.dataset,
            row.request,
            now,
            reason=_audit_text(reason),
        )
        self._deny(row, "denied_by_operator", reason, now, by="operator", before=[denial])
        return self._outcome_received(row.request_id)

    def _pending(self, request_id_text: str) -> IncomingRow:
        row = self.store.find_incoming(request_id_text)
        if row.state != "pending":
            raise Conflict(
                f"request {row.request_id.hex()[:16]} was already {row.state} "
                f"({row.decided_by or 'policy'}); only pending requests can be decided"
            )
        return row

    async def revoke(self, grant_id_text: str, *, reason: str) -> Mapping[str, Any]:
        """Revoke a grant this node issued: sign the revocation and publish it."""
        row = self.store.find_grant(grant_id_text)
        if row.revoked_at is not None:
            raise Conflict(f"grant {row.grant_id.hex()[:16]} was already revoked")
        now = self._now()
        revocation = GrantRevocation(
            grant_id=row.grant_id,
            dataset_id=DatasetId.parse(row.dataset),
            node=self._key.peer_id,
            revoked_at=now,
            expires=max(row.not_after, now + 1),
            reason=reason,
        )
        raw = sign_grant_revocation(revocation, self._key, self._chain)
        await self._publish(raw)
        self.store.revoke_grant(row.grant_id, revocation=raw, at=now, reason=reason)
        self._log(
            [
                PendingEntry(
                    EntryKind.GRANT_REVOKED,
                    raw,
                    {
                        "grant": row.grant_id.hex(),
                        "request": row.request_id.hex(),
                        "dataset": row.dataset,
                        "reason": _audit_text(reason),
                    },
                    now,
                )
            ]
        )
        return self.grant_view(row.grant_id.hex(), details=False)

    # -- views --------------------------------------------------------------------------

    def _denial_json(self, raw: bytes) -> dict[str, Any]:
        denial = open_denial(raw)[0]
        return {
            "reason": denial.reason,
            "explanation": DENIAL_REASONS.get(denial.reason, ""),
            "message": denial.message,
            "node": str(denial.node),
            "org": str(denial.org),
            "decided_at": denial.decided_at,
            "route": route_json(denial.trace),
            "envelope": _b64(raw),
        }

    def _grant_json(
        self,
        raw: bytes,
        *,
        role: Literal["issued", "received"],
        revoked_at: int | None = None,
        revocation_reason: str = "",
        secret: bytes | None = None,
    ) -> dict[str, Any]:
        grant = decode_grant_unverified(raw)
        details: Any = None
        if secret is not None and grant.sealed_details:
            try:
                details = unpack_map(
                    open_sealed(secret, grant.sealed_details, grant.request_id),
                    max_size=8192,
                    max_items=64,
                )
            except DatanetError as exc:
                details = {"error": str(exc)}
        cert_until = grant.not_after
        return {
            "grant_id": grant.grant_id.hex(),
            "request_id": grant.request_id.hex(),
            "dataset_id": str(grant.dataset_id),
            "sequence": grant.sequence,
            "grantee_node": str(grant.grantee_node),
            "grantee_org": str(grant.grantee_org),
            "purpose": grant.purpose,
            "not_before": grant.not_before,
            "not_after": grant.not_after,
            "valid_until": cert_until,
            "issuer_node": str(grant.issuer),
            "issuer_org": str(grant.dataset_id.org),
            "issued_at": grant.issued_at,
            "route": route_json(grant.trace),
            "role": role,
            "revoked_at": revoked_at,
            "revocation_reason": revocation_reason,
            "details": details,
            "envelope": _b64(raw),
        }

    def _request_json(
        self,
        *,
        direction: Literal["sent", "received"],
        raw: bytes,
        state: str,
        reason: str | None,
        message: str,
        decided_at: int | None,
        decided_by: str | None,
        grant_id: bytes | None,
        trace: Sequence[bytes],
    ) -> dict[str, Any]:
        request = open_request(raw)[0]
        return {
            "request_id": request_id(raw).hex(),
            "direction": direction,
            "dataset_id": str(request.dataset_id),
            "sequence": request.sequence,
            "purpose": request.purpose,
            "days": request.validity_days,
            "note": request.note,
            "requester_node": str(request.node),
            "requester_org": str(request.org),
            "created": request.created,
            "deadline": request.deadline,
            "state": state,
            "reason": reason,
            "message": message,
            "decided_at": decided_at,
            "decided_by": decided_by,
            "grant_id": _hex(grant_id),
            "route": route_json(trace),
        }

    def _incoming_json(self, row: IncomingRow) -> dict[str, Any]:
        return self._request_json(
            direction="received",
            raw=row.request,
            state=row.state,
            reason=row.reason,
            message=row.message,
            decided_at=row.decided_at,
            decided_by=row.decided_by,
            grant_id=row.grant_id,
            trace=row.trace,
        )

    def _outgoing_json(self, row: OutgoingRow) -> dict[str, Any]:
        grant_id = None
        if row.state == "granted" and row.decision is not None:
            grant_id = decode_grant_unverified(row.decision).grant_id
        trace = self._routes.get(row.request_id, ())
        if not trace and row.decision is not None and row.state == "granted":
            trace = decode_grant_unverified(row.decision).trace
        return self._request_json(
            direction="sent",
            raw=row.request,
            state=row.state,
            reason=row.reason,
            message=row.message,
            decided_at=row.updated_at if row.state in ("granted", "denied") else None,
            decided_by=None,
            grant_id=grant_id,
            trace=trace,
        )

    def _outcome_sent(self, rid: bytes, answer: _Answer) -> dict[str, Any]:
        row = self.store.outgoing(rid)
        assert row is not None
        return {
            "state": answer.state,
            "request": self._outgoing_json(row),
            "grant": None
            if answer.grant is None
            else self._grant_json(answer.grant, role="received", secret=row.reply_secret),
            "denial": None if answer.denial is None else self._denial_json(answer.denial),
            "receipt": None if answer.receipt is None else _b64(answer.receipt),
        }

    def _outcome_received(self, rid: bytes) -> dict[str, Any]:
        row = self.store.incoming(rid)
        assert row is not None
        grant = denial = None
        if row.state == "granted" and row.decision is not None:
            grant = self._grant_json(row.decision, role="issued")
        if row.state == "denied" and row.decision is not None:
            denial = self._denial_json(row.decision)
        return {
            "state": row.state,
            "request": self._incoming_json(row),
            "grant": grant,
            "denial": denial,
        }

    def requests(
        self,
        *,
        direction: Literal["received", "sent"],
        state: str | None,
        dataset: DatasetId | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Requests this node received (the operator's inbox) or sent, newest first."""
        ds = None if dataset is None else str(dataset)
        if direction == "received":
            return [
                self._incoming_json(r)
                for r in self.store.list_incoming(state=state, dataset=ds, limit=limit)
            ]
        rows = self.store.list_outgoing(state=state, limit=limit)
        return [self._outgoing_json(r) for r in rows if ds is None or r.dataset == ds]

    def request_view(
        self, request_id_text: str, *, direction: Literal["received", "sent"]
    ) -> dict[str, Any]:
        """One request by id or unique prefix."""
        if direction == "received":
            return self._incoming_json(self.store.find_incoming(request_id_text))
        return self._outgoing_json(self.store.find_outgoing(request_id_text))

    def grants(
        self,
        *,
        role: Literal["issued", "received"],
        dataset: DatasetId | None,
        active: bool,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Grants this node issued, or received as a requester."""
        now = self._now()
        ds = None if dataset is None else str(dataset)
        if role == "issued":
            rows = self.store.list_grants(
                dataset=ds, active_at=now if active else None, limit=limit
            )
            return [self._issued_json(r) for r in rows]
        out = []
        revoked = self._revoked()
        for row in self.store.list_outgoing(state="granted", limit=limit):
            if row.decision is None or (ds is not None and row.dataset != ds):
                continue
            view = self._grant_json(row.decision, role="received")
            if active and (view["not_after"] <= now or bytes.fromhex(view["grant_id"]) in revoked):
                continue
            out.append(view)
        return out

    def _issued_json(self, row: GrantRow) -> dict[str, Any]:
        return self._grant_json(
            row.grant,
            role="issued",
            revoked_at=row.revoked_at,
            revocation_reason=row.revocation_reason,
        )

    def grant_view(self, grant_id_text: str, *, details: bool) -> dict[str, Any]:
        """A grant by id or unique prefix: issued here, else received here."""
        try:
            return self._issued_json(self.store.find_grant(grant_id_text))
        except NotFound:
            pass
        text = grant_id_text.lower()
        for row in self.store.list_outgoing(state="granted", limit=10_000):
            if row.decision is None:
                continue
            grant = decode_grant_unverified(row.decision)
            if grant.grant_id.hex().startswith(text) and len(text) >= 8:
                revoked = grant.grant_id in self._revoked()
                view = self._grant_json(
                    row.decision,
                    role="received",
                    secret=row.reply_secret if details else None,
                )
                if revoked:
                    view["revocation_reason"] = "revoked by its issuer"
                return view
        raise NotFound(f"no grant {grant_id_text!r} was issued or received by this node")

    def verify(self, raw: bytes, *, deep: bool) -> dict[str, Any]:
        """Check a grant offline against this node's trust store and revocations."""
        view: dict[str, Any] | None = None
        try:
            view = self._grant_json(raw, role="received")
        except DatanetError:
            view = None
        try:
            verify_grant(raw, self._trust, self._now(), revoked=self._revoked(), deep=deep)
        except DatanetError as exc:
            return {
                "valid": False,
                "deep": deep,
                "error": {"code": exc.code, "message": str(exc)},
                "grant": view,
            }
        return {"valid": True, "deep": deep, "error": None, "grant": view}

    def stats(self) -> dict[str, Any]:
        """Counts for ``datanet node status``."""
        return {**self.store.counts(), **self.counters}

    @staticmethod
    def purposes() -> list[dict[str, Any]]:
        """The purpose vocabulary."""
        return [
            {
                "id": p.id,
                "iri": p.iri,
                "label": p.label,
                "description": p.description,
                "parent": p.parent,
            }
            for p in PURPOSES.values()
        ]
