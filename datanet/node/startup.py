"""Opening a node: its home, trust, stores, catalog and host, assembled and joined.

:func:`open_node` is the daemon's node factory and what tests and the localnet
runner use to run real nodes. It is the one place that turns a data directory
and a :class:`~datanet.node.config.Config` into a running
:class:`~datanet.node.driver.Node`.

Invariants:
* One :class:`~identity.certs.TrustStore` per node, shared by admission and
  record validation, so a revocation learned later reaches both.
* The audit trail records a changed certificate or trust store before the node
  serves anything (:func:`~datanet.node.audit.record_identity_changes`).
* Everything opened here is closed when the ``async with`` block ends, in
  reverse order, whatever ends it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from datanet.errors import NotFound
from datanet.node.audit import AuditTrail, record_identity_changes
from datanet.node.config import Config
from datanet.node.driver import Node
from datanet.node.home import Home
from datanet.p2p import Admission, AdmissionMode, HostLimits, open_host
from datanet.store.access import AccessStore
from datanet.store.audit import AuditLog
from datanet.store.catalog import Catalog
from datanet.store.db import Storage
from datanet.store.witness import WitnessStore
from identity.certs import TrustStore, parse_certificate
from identity.keys import KeyPair

__all__ = ["open_node"]

log = logging.getLogger("datanet.node")


def _trust_for(home: Home, mode: AdmissionMode) -> TrustStore:
    trust = home.trust_store()
    if mode is not AdmissionMode.CLOSED:
        # Records are verified regardless of the admission mode; in members/open
        # networks a valid chain from any organization is acceptable.
        trust.accept_any = True
    return trust


@asynccontextmanager
async def open_node(
    data_dir: Path, config: Config, node_key: KeyPair, *, rng: random.Random | None = None
) -> AsyncIterator[Node]:
    """Run a node for the duration of an ``async with`` block (the daemon's node factory).

    Joins the network (bootstrap peers, else the address book) before yielding.

    Raises:
        DatanetError: the data directory, database or listen addresses are unusable.
    """
    home = Home(data_dir)
    now = int(time.time())
    mode = AdmissionMode(config.network.admission)
    trust = _trust_for(home, mode)
    try:
        chain = home.membership_chain(now)
    except NotFound:
        chain = []
        log.warning("no valid membership certificate installed; peers may refuse this node")
    org = parse_certificate(chain[0]).org if chain else None
    admission = Admission(mode=mode, trust=trust, chain=tuple(chain))
    limits = HostLimits(
        max_connections=config.limits.max_connections,
        inbound_streams_per_peer=config.limits.inbound_streams_per_peer,
        request_timeout=config.limits.request_timeout,
        handshake_timeout=config.limits.handshake_timeout,
        max_pending_handshakes=config.limits.max_pending_handshakes,
        # a quarter at most, so that any allowed max_pending_handshakes is valid
        reserved_handshakes=min(
            HostLimits.reserved_handshakes, config.limits.max_pending_handshakes // 4
        ),
        pending_per_address=config.limits.pending_per_address,
        connections_per_address=config.limits.connections_per_address,
        refused_ttl=config.limits.refused_ttl,
    )
    storage = Storage(home.database_path)
    try:
        witness_store = WitnessStore(home.database_path, reported_by=str(node_key.peer_id))
    except BaseException:
        storage.close()
        raise
    try:
        catalog = Catalog(home.layout.catalog)
        try:
            access = AccessStore(home.layout.access)
        except BaseException:
            catalog.close()
            raise
        try:
            audit_log = AuditLog(home.layout.audit)
        except BaseException:
            access.close()
            catalog.close()
            raise
        try:
            trail = AuditTrail(log=audit_log, key=node_key, chain=chain, clock=time.time)
            if audit_log.damaged is not None:
                # Start anyway, so that `datanet audit verify` can name the bad entry;
                # whatever must be logged is refused until the file is restored.
                log.error("audit log damaged", extra={"kv": {"error": audit_log.damaged}})
            else:
                # Before the node serves anything: a new certificate or trusted org set is logged.
                record_identity_changes(trail, chain=chain, trust=trust)
            async with open_host(
                node_key,
                list(config.network.listen),
                admission,
                limits=limits,
                announce=list(config.network.announce),
            ) as host:
                node = Node(
                    key=node_key,
                    host=host,
                    storage=storage,
                    catalog=catalog,
                    trust=trust,
                    config=config,
                    org=org,
                    rng=rng or random.Random(),
                    chain=chain,
                    access=access,
                    access_details=home.layout.access_details,
                    audit=trail,
                    witness_store=witness_store,
                )
                async with trio.open_nursery() as nursery:
                    await nursery.start(node._run)
                    try:
                        yield node
                    finally:
                        nursery.cancel_scope.cancel()
        finally:
            audit_log.close()
            access.close()
            catalog.close()
    finally:
        witness_store.close()
        storage.close()
