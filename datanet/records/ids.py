"""Dataset identifiers: ``dn://<org did:key>/<name>``.

Grammar (see ``docs/records.md``)::

    dataset-id = "dn://" org-id "/" name
    org-id     = did:key of an Ed25519 key (``did:key:z6Mk…``), canonical form
    name       = segment *7( "/" segment )          ; 1 to 8 segments
    segment    = [a-z0-9] *63( [a-z0-9._-] )        ; 1 to 64 characters

The name is at most 200 characters, lower-case ASCII only, never contains
``..`` and never ends with ``/``.

Invariants:
* A :class:`DatasetId` that exists is valid: the constructor checks the grammar,
  so every holder can rely on it.
* ``str(DatasetId.parse(text)) == text`` for every accepted ``text``; the text
  form is canonical, so two ids are equal exactly when their texts are equal
  byte for byte (no case folding, no percent-encoding, no normalization).
* The identifier names the *organization*, never the node: a dataset moved to
  another node of the same org keeps its id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from datanet.errors import DecodeError, InvalidInput, UnknownAlias
from identity.keys import OrgId

__all__ = [
    "MAX_ID_TEXT",
    "MAX_NAME_LEN",
    "MAX_SEGMENTS",
    "SCHEME",
    "DatasetId",
    "UnknownAlias",
    "check_alias",
    "check_dataset_name",
    "resolve_alias",
]

SCHEME = "dn://"
MAX_NAME_LEN = 200
MAX_SEGMENTS = 8
MAX_SEGMENT_LEN = 64
# A bound on untrusted input before any parsing; the exact limits (56-character
# did, 200-character name) are checked afterwards with specific messages.
MAX_ID_TEXT = 512
DHT_NAMESPACE = b"/dn/"

_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_ALIAS = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_dataset_name(name: str) -> str:
    """Check a dataset name against the grammar and return it unchanged.

    Raises:
        DecodeError: the name breaks the grammar; the message says which rule.
    """
    if not isinstance(name, str):
        raise DecodeError(f"a dataset name must be text, not {type(name).__name__}")
    if not name:
        raise DecodeError("the dataset name is empty (expected dn://<org>/<name>)")
    if len(name) > MAX_NAME_LEN:
        raise DecodeError(
            f"the dataset name is {len(name)} characters; the limit is {MAX_NAME_LEN}"
        )
    if name != name.lower():
        raise DecodeError(f"dataset names are lower-case only: {name[:80]!r}")
    if ".." in name:
        raise DecodeError(f"a dataset name may not contain '..': {name[:80]!r}")
    if name.startswith("/"):
        raise DecodeError(f"a dataset name may not start with '/': {name[:80]!r}")
    if name.endswith("/"):
        raise DecodeError(f"a dataset name may not end with '/': {name[:80]!r}")
    segments = name.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise DecodeError(
            f"the dataset name has {len(segments)} segments; the limit is {MAX_SEGMENTS}"
        )
    for segment in segments:
        if not segment:
            raise DecodeError(f"a dataset name may not contain '//': {name[:80]!r}")
        if len(segment) > MAX_SEGMENT_LEN:
            raise DecodeError(
                f"name segment {segment[:20]!r}… is {len(segment)} characters; "
                f"the limit is {MAX_SEGMENT_LEN}"
            )
        if not _SEGMENT.fullmatch(segment):
            raise DecodeError(
                f"name segment {segment!r} must start with a-z or 0-9 and contain only "
                "a-z, 0-9, '.', '_' and '-'"
            )
    return name


def check_alias(alias: str) -> str:
    """Check a petname (local alias of an org) and return it unchanged.

    Raises:
        InvalidInput: the alias is not 1-64 characters of ``a-z 0-9 _ -``.
    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidInput(
            f"an alias is 1-64 characters of a-z, 0-9, '_' and '-', "
            f"starting with a letter or digit: {str(alias)[:80]!r}"
        )
    return alias


def _split(text: str) -> tuple[str, str]:
    """Split ``dn://<authority>/<name>`` into its two parts (name not yet checked)."""
    if not isinstance(text, str):
        raise DecodeError(f"a dataset id must be text, not {type(text).__name__}")
    if len(text) > MAX_ID_TEXT:
        raise DecodeError(f"the dataset id is {len(text)} characters; the limit is {MAX_ID_TEXT}")
    if not text.startswith(SCHEME):
        raise DecodeError(f"a dataset id starts with 'dn://': {text[:80]!r}")
    rest = text[len(SCHEME) :]
    authority, slash, name = rest.partition("/")
    if not authority:
        raise DecodeError(f"the dataset id names no organization: {text[:80]!r}")
    if not slash:
        raise DecodeError(f"the dataset id has no name after the organization: {text[:80]!r}")
    return authority, name


@dataclass(frozen=True)
class DatasetId:
    """A dataset's self-certifying, org-scoped identifier.

    Args:
        org: the publishing organization.
        name: the dataset's name inside the organization (see the grammar).

    Raises:
        DecodeError: ``name`` breaks the grammar.
    """

    org: OrgId
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.org, OrgId):
            raise InvalidInput("DatasetId.org must be an OrgId")
        check_dataset_name(self.name)

    @classmethod
    def parse(cls, text: str) -> DatasetId:
        """Parse ``dn://did:key:z6Mk…/<name>``.

        Raises:
            DecodeError: ``text`` is not a dataset id; the message says what is wrong.
        """
        authority, name = _split(text)
        if not authority.startswith("did:"):
            raise DecodeError(
                f"{authority[:40]!r} is not an organization id (did:key:z6Mk…); "
                "aliases are resolved with resolve_alias"
            )
        org = OrgId.parse(authority)
        if str(org) != authority:
            raise DecodeError(f"the organization id is not in canonical form: {authority!r}")
        return cls(org, check_dataset_name(name))

    @cached_property
    def _text(self) -> str:
        return f"{SCHEME}{self.org}/{self.name}"

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"DatasetId({self._text})"

    def dht_key(self) -> bytes:
        """The DHT key of this dataset's descriptor: ``/dn/<org did>/<name>``."""
        return DHT_NAMESPACE + f"{self.org}/{self.name}".encode("ascii")

    def provider_key(self) -> bytes:
        """The DHT provider key of this dataset: the sha2-256 multihash of :meth:`dht_key`.

        Nodes that publish the dataset announce themselves under it (ADD_PROVIDER),
        so ``find_providers`` tells who answers for the data. A multihash keeps it
        short and shaped like every other libp2p provider key.
        """
        return b"\x12\x20" + hashlib.sha256(self.dht_key()).digest()

    @classmethod
    def from_dht_key(cls, key: bytes) -> DatasetId:
        """Inverse of :meth:`dht_key`.

        Raises:
            DecodeError: ``key`` is not a ``/dn/`` key of a valid dataset id.
        """
        if not isinstance(key, bytes) or not key.startswith(DHT_NAMESPACE):
            raise DecodeError("not a /dn/ DHT key")
        try:
            rest = key[len(DHT_NAMESPACE) :].decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("a /dn/ DHT key is ASCII") from None
        return cls.parse(SCHEME + rest)


def resolve_alias(text: str, aliases: Mapping[str, OrgId]) -> DatasetId:
    """Parse a dataset id whose authority may be a local alias (petname).

    ``dn://did:key:…/name`` is parsed as usual; ``dn://<alias>/name`` looks the
    alias up in ``aliases``. Aliases are local to the user and never travel on
    the wire: records always carry the org's did.

    Raises:
        DecodeError: ``text`` is not a dataset id.
        InvalidInput: the alias is malformed.
        UnknownAlias: the alias is well-formed but not in ``aliases``.
    """
    authority, name = _split(text)
    if authority.startswith("did:"):
        return DatasetId.parse(text)
    check_alias(authority)
    org = aliases.get(authority)
    if org is None:
        raise UnknownAlias(f"no organization is known by the alias {authority!r}")
    return DatasetId(org, check_dataset_name(name))
