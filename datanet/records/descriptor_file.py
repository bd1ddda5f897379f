"""The author-friendly descriptor file (TOML) and its conversion to a :class:`Descriptor`.

A descriptor file is what an operator edits by hand: the dataset's metadata
without the node-specific or signature parts. ``publisher_node`` is supplied by
the node that signs, so the same file can be signed by any publisher of the org.

Times are TOML offset date-times (``2024-05-01T12:00:00Z``), local dates
(``2024-05-01``, meaning midnight UTC) or integer Unix seconds. A date-time
without a time zone is refused rather than guessed.

Defaults when a field is left out: ``issued`` and ``modified`` = now,
``expires`` = now + 30 days, ``sequence`` = now (Unix seconds). The sequence
default makes every re-signing of an edited file supersede the previous one
without bookkeeping; set it explicitly only if you manage versions yourself.

Invariants:
* ``descriptor_from_toml(descriptor_to_toml(d), publisher_node=d.publisher_node,
  now=any) == d`` for every descriptor ``d`` (round trip).
* Unknown keys are refused, naming the key, so that a typo never silently
  drops a field. All errors are :class:`~datanet.errors.InvalidInput`.
"""

from __future__ import annotations

import math
import tomllib
from datetime import UTC, date, datetime, time
from typing import Any, cast

import tomli_w

from datanet.errors import DecodeError, InvalidInput
from datanet.records.descriptor import Descriptor, Distribution
from datanet.records.ids import DatasetId
from datanet.records.policy import AccessMode, AccessPolicy
from datanet.records.purposes import canonical_purpose
from identity.keys import OrgId, PeerId

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_FILE_SIZE",
    "descriptor_from_toml",
    "descriptor_template",
    "descriptor_to_toml",
]

#: Default time from ``now`` to ``expires`` when the file does not say.
DEFAULT_LIFETIME = 30 * 86400
#: A descriptor file larger than this is refused before parsing.
MAX_FILE_SIZE = 256 * 1024

_TOP_KEYS = frozenset(
    {
        "dataset_id",
        "title",
        "description",
        "keywords",
        "themes",
        "license",
        "version",
        "schema",
        "spatial",
        "issued",
        "modified",
        "expires",
        "sequence",
        "temporal",
        "access_policy",
        "distributions",
    }
)
_POLICY_KEYS = frozenset({"mode", "allowed_orgs", "purposes", "max_validity_days"})
_DIST_KEYS = frozenset({"media_type", "title", "access", "byte_size"})
_TEMPORAL_KEYS = frozenset({"start", "end"})


def _unknown(where: str, table: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InvalidInput(
            f"descriptor file: unknown field(s) in {where}: {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _seconds(name: str, value: object) -> int:
    """A TOML time value as Unix seconds."""
    if isinstance(value, bool):
        raise InvalidInput(f"descriptor file: {name} must be a date, a date-time or Unix seconds")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidInput(
                f"descriptor file: {name} needs a time zone, e.g. 2024-05-01T12:00:00Z"
            )
        return math.floor(value.timestamp())
    if isinstance(value, date):
        return math.floor(datetime.combine(value, time(0), tzinfo=UTC).timestamp())
    raise InvalidInput(f"descriptor file: {name} must be a date, a date-time or Unix seconds")


def _time_value(seconds: int, *, prefer_date: bool = False) -> datetime | date | int:
    """Unix seconds as the most readable TOML value that converts back exactly."""
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        return seconds
    if prefer_date and moment.time() == time(0):
        return moment.date()
    return moment


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"descriptor file: {name} must be a string")
    return value


def _text_list(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"descriptor file: {name} must be a list of strings")
    return tuple(value)


def _table(name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"descriptor file: {name} must be a table")
    return value


def _int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"descriptor file: {name} must be an integer")
    return value


def descriptor_from_toml(text: str, *, publisher_node: PeerId, now: int) -> Descriptor:
    """Build a descriptor from a descriptor file.

    Args:
        text: the file's contents.
        publisher_node: the node that will sign it.
        now: the current time in Unix seconds (for the defaults).

    Raises:
        InvalidInput: the file is not valid TOML, has unknown or missing
            fields, or a value is wrong; the message names the field.
    """
    if len(text) > MAX_FILE_SIZE:
        raise InvalidInput(f"descriptor file is larger than {MAX_FILE_SIZE} characters")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DecodeError(f"descriptor file is not valid TOML: {exc}") from None
    _unknown("the top level", doc, _TOP_KEYS)
    for required in ("dataset_id", "title"):
        if required not in doc:
            raise InvalidInput(f"descriptor file: missing field {required!r}")

    distributions = []
    dists = doc.get("distributions", [])
    if not isinstance(dists, list):
        raise InvalidInput("descriptor file: distributions must be an array of tables")
    for i, raw in enumerate(dists):
        where = f"distributions[{i}]"
        dist = _table(where, raw)
        _unknown(where, dist, _DIST_KEYS)
        if "media_type" not in dist:
            raise InvalidInput(f"descriptor file: {where} needs a media_type")
        size = dist.get("byte_size")
        distributions.append(
            Distribution(
                media_type=_text(f"{where}.media_type", dist["media_type"]),
                title=_text(f"{where}.title", dist.get("title", "")),
                access=_text(f"{where}.access", dist.get("access", "request")),
                byte_size=None if size is None else _int(f"{where}.byte_size", size),
            )
        )

    temporal: tuple[int, int] | None = None
    if "temporal" in doc:
        tmp = _table("temporal", doc["temporal"])
        _unknown("temporal", tmp, _TEMPORAL_KEYS)
        if set(tmp) != _TEMPORAL_KEYS:
            raise InvalidInput("descriptor file: temporal needs both start and end")
        temporal = (_seconds("temporal.start", tmp["start"]), _seconds("temporal.end", tmp["end"]))

    pol = _table("access_policy", doc.get("access_policy", {}))
    _unknown("access_policy", pol, _POLICY_KEYS)
    mode = _text("access_policy.mode", pol.get("mode", "request"))
    allowed = _text_list("access_policy.allowed_orgs", pol.get("allowed_orgs", []))
    orgs = []
    for i, org in enumerate(allowed):
        try:
            orgs.append(OrgId.parse(org))
        except InvalidInput as exc:
            raise InvalidInput(f"descriptor file: access_policy.allowed_orgs[{i}]: {exc}") from None

    spatial = doc.get("spatial")
    try:
        dataset_id = DatasetId.parse(_text("dataset_id", doc["dataset_id"]))
    except InvalidInput as exc:
        raise InvalidInput(f"descriptor file: dataset_id: {exc}") from None
    try:
        return Descriptor(
            dataset_id=dataset_id,
            title=_text("title", doc["title"]),
            description=_text("description", doc.get("description", "")),
            keywords=_text_list("keywords", doc.get("keywords", [])),
            themes=_text_list("themes", doc.get("themes", [])),
            publisher_node=publisher_node,
            license=_text("license", doc.get("license", "")),
            version=_text("version", doc.get("version", "")),
            issued=_seconds("issued", doc.get("issued", now)),
            modified=_seconds("modified", doc.get("modified", now)),
            schema=_text("schema", doc.get("schema", "")),
            distributions=tuple(distributions),
            temporal=temporal,
            spatial=None if spatial is None else _text("spatial", spatial),
            access_policy=AccessPolicy(
                mode=cast(AccessMode, mode),
                allowed_orgs=tuple(orgs),
                purposes=_purposes(pol.get("purposes", [])),
                max_validity_days=_int(
                    "access_policy.max_validity_days", pol.get("max_validity_days", 365)
                ),
            ),
            sequence=_int("sequence", doc.get("sequence", now)),
            expires=_seconds("expires", doc.get("expires", now + DEFAULT_LIFETIME)),
        )
    except InvalidInput as exc:
        message = str(exc)
        if not message.startswith("descriptor file:"):
            message = f"descriptor file: {message}"
        raise type(exc)(message) from None


def descriptor_to_toml(desc: Descriptor) -> str:
    """Write ``desc`` as a descriptor file (every field explicit, for a round trip).

    ``publisher_node`` is not written: whoever signs the file supplies it. When
    editing the result to publish an update, remove ``sequence`` (or raise it)
    so that the new version supersedes the old one.
    """
    doc: dict[str, Any] = {
        "dataset_id": str(desc.dataset_id),
        "title": desc.title,
        "description": desc.description,
        "keywords": list(desc.keywords),
        "themes": list(desc.themes),
        "license": desc.license,
        "version": desc.version,
        "schema": desc.schema,
    }
    if desc.spatial is not None:
        doc["spatial"] = desc.spatial
    doc["issued"] = _time_value(desc.issued)
    doc["modified"] = _time_value(desc.modified)
    doc["expires"] = _time_value(desc.expires)
    doc["sequence"] = desc.sequence
    if desc.temporal is not None:
        doc["temporal"] = {
            "start": _time_value(desc.temporal[0], prefer_date=True),
            "end": _time_value(desc.temporal[1], prefer_date=True),
        }
    pol = desc.access_policy
    doc["access_policy"] = {
        "mode": pol.mode,
        "allowed_orgs": [str(o) for o in pol.allowed_orgs],
        "purposes": list(pol.purposes),
        "max_validity_days": pol.max_validity_days,
    }
    dists = []
    for d in desc.distributions:
        item: dict[str, Any] = {"media_type": d.media_type, "title": d.title, "access": d.access}
        if d.byte_size is not None:
            item["byte_size"] = d.byte_size
        dists.append(item)
    if dists:
        doc["distributions"] = dists
    header = f"# datanet dataset descriptor for {desc.dataset_id}\n"
    return header + tomli_w.dumps(doc, multiline_strings=True)


def descriptor_template(dataset_id: DatasetId, *, now: int | None = None) -> str:
    """A commented descriptor file for ``dataset_id``, ready to edit.

    The template is valid as it stands (it parses into a descriptor), so an
    operator can sign it at once and refine it later.

    Args:
        dataset_id: the dataset the file describes.
        now: if given, ``issued`` is written out as that moment, so that it stays
            fixed across later re-signings; otherwise it is left to default.
    """
    issued = (
        f"issued = {datetime.fromtimestamp(now, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        if now is not None
        else "# issued = 2024-01-01T00:00:00Z      # default: now"
    )
    return f'''\
# datanet dataset descriptor. Edit, then sign it: datanet descriptor sign <this file>
# Field reference and limits: docs/records.md. Times are TOML date-times with a
# time zone (2024-05-01T12:00:00Z), dates (2024-05-01 = midnight UTC) or Unix seconds.

dataset_id = "{dataset_id}"
title = "Untitled dataset"              # required, at most 256 characters
description = """
What the data is, how it was collected and what it is good for.
"""
keywords = []                            # at most 32, e.g. ["weather", "stations"]
themes = []                              # URIs or short labels, at most 16
license = ""                             # a URI or an SPDX id, e.g. "CC-BY-4.0"
version = "1.0"
schema = ""                              # URI of a schema, or a short description
# spatial = "13.08,52.33,13.76,52.68"    # place name, URI, WKT or "minlon,minlat,maxlon,maxlat"
{issued}
# modified = 2024-01-01T00:00:00Z    # default: now
# expires = 2024-02-01T00:00:00Z     # default: now + 30 days
# sequence = 1                       # default: now (Unix seconds); the highest wins

# [temporal]                         # the period the data covers
# start = 2020-01-01
# end = 2023-12-31

[access_policy]
mode = "request"                         # open | request | closed
allowed_orgs = []                        # did:key ids; empty = any organization
purposes = []                            # allowed purposes; empty = any purpose
max_validity_days = 365                  # longest grant, 1..3650 days

[[distributions]]
media_type = "text/csv"
title = "Full table"
access = "request"                       # "request" (ask through datanet) or a URL
# byte_size = 1048576
'''


def _purposes(values: object) -> tuple[str, ...]:
    """Policy purposes as vocabulary ids (aliases accepted; an unknown one is an error)."""
    out = []
    for value in _text_list("access_policy.purposes", values):
        try:
            out.append(canonical_purpose(value))
        except InvalidInput as exc:
            raise InvalidInput(f"access_policy.purposes: {exc}") from None
    return tuple(out)
