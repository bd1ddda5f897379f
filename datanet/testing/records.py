"""Fixed keys, membership certificates and signed dataset descriptors for tests.

Two families of helpers:

* **From fixed keys** (unit tests, property tests, benchmarks): :data:`ORG_A`,
  :data:`ORG_B`, :data:`NODE_A`, :data:`NODE_B` or any :func:`key`;
  :func:`certificate`, :func:`descriptor`, :func:`full_descriptor`,
  :func:`signed`, and the tombstones :func:`deprecation` and
  :func:`signed_deprecation`, all at :data:`datanet.testing.clock.NOW` unless
  told otherwise.
* **From a provisioned devnet node** (integration tests: real key files, real
  certificates, real time): :func:`node_descriptor` and :func:`signed_by`, and
  for attacks :func:`sign_as` and :func:`forge_body`.

Invariants:
* Everything is deterministic given its arguments, except the devnet-node
  helpers, which read the node's files and default to the current time (the
  node's certificate was issued at provisioning time, not at ``NOW``).
* Only :func:`sign_as` and :func:`forge_body` make records that
  :func:`~datanet.records.descriptor.sign_descriptor` would refuse to make
  (and :func:`signed_deprecation` with ``check=False``, for tombstones).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from datanet.node.home import Home
from datanet.records.deprecation import (
    DEFAULT_DEPRECATION_LIFETIME,
    DEPRECATION_TAG,
    Deprecation,
    sign_deprecation,
)
from datanet.records.descriptor import (
    DESCRIPTOR_TAG,
    AccessPolicy,
    Descriptor,
    Distribution,
    open_descriptor,
    sign_descriptor,
)
from datanet.records.ids import DatasetId
from datanet.testing.clock import DAY, HOUR, NOW
from identity.certs import Role, issue_certificate
from identity.envelope import SignedEnvelope, seal
from identity.keys import KeyPair, OrgId, PeerId

if TYPE_CHECKING:
    from datanet.devnet import DevnetNode

__all__ = [
    "NODE_A",
    "NODE_B",
    "ORG_A",
    "ORG_B",
    "certificate",
    "deprecation",
    "descriptor",
    "forge_body",
    "full_descriptor",
    "key",
    "node_descriptor",
    "sign_as",
    "signed",
    "signed_by",
    "signed_deprecation",
]


def key(tag: str) -> KeyPair:
    """The fixed key whose seed is ``tag`` repeated to 32 bytes (``key("A")``: ``b"A" * 32``).

    Raises:
        ValueError: ``tag`` is empty.
    """
    if not tag:
        raise ValueError("a key tag must not be empty")
    seed = tag.encode("utf-8") * (32 // len(tag.encode("utf-8")) + 1)
    return KeyPair.from_seed(seed[:32])


#: An organization's root key.
ORG_A = key("A")
#: A second, unrelated organization's root key.
ORG_B = key("B")
#: A node of :data:`ORG_A` (see :func:`certificate`).
NODE_A = key("n")
#: A second node.
NODE_B = key("m")


def certificate(
    org: KeyPair = ORG_A,
    node: KeyPair | PeerId = NODE_A,
    roles: Collection[Role] = (Role.PUBLISHER,),
    *,
    now: int = NOW,
    not_before: int | None = None,
    not_after: int | None = None,
    serial: int = 7,
    org_name: str = "",
) -> bytes:
    """A membership certificate of ``node`` in ``org``: from a day before ``now`` for a year."""
    peer = node.peer_id if isinstance(node, KeyPair) else node
    return issue_certificate(
        org,
        peer,
        roles,
        not_before=now - DAY if not_before is None else not_before,
        not_after=now + 365 * DAY if not_after is None else not_after,
        serial=serial,
        org_name=org_name,
    )


def descriptor(
    name: str | DatasetId = "weather/stations",
    *,
    org: KeyPair | OrgId = ORG_A,
    node: KeyPair | PeerId = NODE_A,
    now: int = NOW,
    sequence: int = 1,
    title: str = "t",
    lifetime: int = DAY,
    **fields: Any,
) -> Descriptor:
    """A minimal descriptor of dataset ``name`` of ``org``, published by ``node`` at ``now``.

    It is issued and modified at ``now`` and expires ``lifetime`` seconds later;
    ``fields`` set (or override) any other :class:`Descriptor` field.
    """
    if isinstance(name, DatasetId):
        dataset_id = name
    else:
        dataset_id = DatasetId(org.org_id if isinstance(org, KeyPair) else org, name)
    values: dict[str, Any] = {
        "dataset_id": dataset_id,
        "title": title,
        "publisher_node": node.peer_id if isinstance(node, KeyPair) else node,
        "issued": now,
        "modified": now,
        "sequence": sequence,
        "expires": now + lifetime,
    }
    values.update(fields)
    return Descriptor(**values)


def full_descriptor(**changes: Any) -> Descriptor:
    """A realistic descriptor of :data:`ORG_A` by :data:`NODE_A` with every field set.

    Issued ten days before :data:`~datanet.testing.clock.NOW`, sequence 5, valid
    for thirty days; ``changes`` replace fields.
    """
    base = descriptor(
        "weather/stations",
        title="Weather stations",
        description="Hourly observations.\nQuality-controlled.",
        keywords=("weather", "temperature"),
        themes=("http://publications.europa.eu/resource/authority/data-theme/ENVI",),
        license="CC-BY-4.0",
        version="1.0",
        issued=NOW - 10 * DAY,
        modified=NOW - DAY,
        schema="https://example.org/schema.json",
        distributions=(
            Distribution("text/csv", "Full table", "request", 1234),
            Distribution("application/json", "API", "https://example.org/api", None),
        ),
        temporal=(NOW - 400 * DAY, NOW - DAY),
        spatial="13.08,52.33,13.76,52.68",
        access_policy=AccessPolicy("request", (ORG_B.org_id,), ("research",), 90),
        sequence=5,
        expires=NOW + 30 * DAY,
    )
    return dataclasses.replace(base, **changes)


def signed(
    desc: Descriptor,
    *,
    key: KeyPair = NODE_A,
    chain: Sequence[bytes] | None = None,
    org: KeyPair = ORG_A,
) -> bytes:
    """``desc`` signed by ``key`` with ``chain`` (default: its :func:`certificate` in ``org``).

    Raises:
        DatanetError: ``desc`` does not match the signer or its chain (see
            :func:`~datanet.records.descriptor.sign_descriptor`).
    """
    return sign_descriptor(desc, key, [certificate(org, key)] if chain is None else chain)


def deprecation(
    name: str | DatasetId = "weather/stations",
    *,
    org: KeyPair | OrgId = ORG_A,
    node: KeyPair | PeerId = NODE_A,
    now: int = NOW,
    sequence: int = 2,
    reason: str = "",
    lifetime: int = DEFAULT_DEPRECATION_LIFETIME,
) -> Deprecation:
    """A tombstone of dataset ``name`` of ``org``, signed-to-be by ``node``, withdrawn at ``now``.

    ``sequence`` defaults to 2, one above :func:`descriptor`'s default, so it
    withdraws that descriptor. It expires ``lifetime`` seconds after ``now``:
    by default :data:`~datanet.records.deprecation.DEFAULT_DEPRECATION_LIFETIME`
    (a year: long enough to outlive every copy of what it withdraws, see there);
    :func:`certificate`'s default year covers it.
    """
    if isinstance(name, DatasetId):
        dataset_id = name
    else:
        dataset_id = DatasetId(org.org_id if isinstance(org, KeyPair) else org, name)
    return Deprecation(
        dataset_id=dataset_id,
        sequence=sequence,
        withdrawn_at=now,
        expires=now + lifetime,
        node=node.peer_id if isinstance(node, KeyPair) else node,
        reason=reason,
    )


def signed_deprecation(
    dep: Deprecation,
    *,
    key: KeyPair = NODE_A,
    chain: Sequence[bytes] | None = None,
    org: KeyPair = ORG_A,
    check: bool = True,
) -> bytes:
    """``dep`` signed by ``key`` with ``chain`` (default: its :func:`certificate` in ``org``).

    With ``check=False`` the envelope is sealed as a forger would, skipping every
    consistency check :func:`~datanet.records.deprecation.sign_deprecation` makes.

    Raises:
        DatanetError: ``dep`` does not match the signer or its chain (``check`` only).
    """
    certs = [certificate(org, key)] if chain is None else list(chain)
    if not check:
        return seal(key, DEPRECATION_TAG, dep.encode_body(), certs).encode()
    return sign_deprecation(dep, key, certs)


def node_descriptor(
    node: DevnetNode,
    name: str,
    sequence: int = 1,
    title: str = "genuine",
    *,
    publisher: DevnetNode | None = None,
    now: int | None = None,
    lifetime: int = HOUR,
    **fields: Any,
) -> Descriptor:
    """A descriptor of dataset ``name`` of ``node``'s organization, valid for ``lifetime``.

    ``publisher`` (default: ``node``) is named as the publishing node; ``now``
    defaults to the current time; ``fields`` set any other descriptor field.
    """
    return descriptor(
        name,
        org=node.org.org_id,
        node=(publisher or node).peer_id,
        now=int(time.time()) if now is None else now,
        sequence=sequence,
        title=title,
        lifetime=lifetime,
        **{"description": "integration test dataset", **fields},
    )


def signed_by(
    node: DevnetNode, name: str, sequence: int = 1, title: str = "genuine", **fields: Any
) -> bytes:
    """A genuine descriptor of ``node``'s organization, signed by ``node`` with its files.

    ``fields`` go to :func:`node_descriptor` (e.g. ``now``, ``description``).
    """
    home = Home(node.home)
    desc = node_descriptor(node, name, sequence, title, **fields)
    return sign_descriptor(desc, home.load_node_key(), home.membership_chain(desc.modified))


def sign_as(signer: DevnetNode, desc: Descriptor, chain_of: DevnetNode) -> bytes:
    """Seal ``desc`` with ``signer``'s key and ``chain_of``'s certificate, skipping every
    consistency check :func:`sign_descriptor` makes (what a forger would do)."""
    now = int(time.time())
    node_key = Home(signer.home).load_node_key()
    chain = Home(chain_of.home).membership_chain(now)
    return seal(node_key, DESCRIPTOR_TAG, desc.encode_body(), chain).encode()


def forge_body(raw: bytes, **changes: object) -> bytes:
    """``raw`` with its descriptor body changed but the original signature kept."""
    desc, env = open_descriptor(raw)
    body = dataclasses.replace(desc, **changes).encode_body()  # type: ignore[arg-type]
    return SignedEnvelope(env.tag, body, env.signer, env.signature, env.chain).encode()
