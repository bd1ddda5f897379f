"""DCAT-3 JSON-LD export of a descriptor.

The export is one ``dcat:Dataset`` node in compact JSON-LD with an inline
``@context`` (no network fetch needed to interpret it). Mapping (see
``docs/records.md``):

* ``dataset_id`` -> ``@id`` and ``dct:identifier``; the publishing org's
  ``did:key`` -> ``dct:publisher`` (a ``foaf:Agent``).
* ``issued``/``modified`` -> ``xsd:dateTime`` literals in UTC.
* themes, license and schema become IRIs (``{"@id": …}``) when they look like
  absolute IRIs, and labelled nodes otherwise.
* each distribution -> ``dcat:Distribution`` with ``dcat:mediaType`` (the IANA
  media type IRI), ``dcat:accessURL`` (the URL, or the dataset id itself when
  access is by datanet request) and ``dcat:byteSize``.
* the access policy -> ``dct:accessRights`` (EU access-right vocabulary) and an
  ODRL ``odrl:hasPolicy`` offer listing the accepted purposes.

Invariant: the result is plain JSON (``json.dumps`` works) and is a pure
function of the descriptor.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from datanet.records.descriptor import Descriptor

__all__ = ["DCAT_CONTEXT", "to_dcat_jsonld"]

DCAT_CONTEXT: dict[str, str] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "locn": "http://www.w3.org/ns/locn#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
}

_IANA_MEDIA_TYPES = "https://www.iana.org/assignments/media-types/"
_ACCESS_RIGHTS = "http://publications.europa.eu/resource/authority/access-right/"
_ACCESS_RIGHT_OF_MODE = {"open": "PUBLIC", "request": "RESTRICTED", "closed": "NON_PUBLIC"}

_IRI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:[^\s<>\"{}|\\^`]+")
_WKT = re.compile(r"\s*(POINT|POLYGON|MULTIPOLYGON|LINESTRING|ENVELOPE)\s*\(", re.IGNORECASE)
_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
_BBOX = re.compile(",".join([_NUMBER] * 4))
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*", re.IGNORECASE)


def _is_iri(text: str) -> bool:
    """Whether ``text`` is an absolute IRI (scheme + something), not a plain label."""
    return bool(_IRI.fullmatch(text))


def _datetime(seconds: int) -> dict[str, str]:
    try:
        text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        # Beyond year 9999: xsd:dateTime cannot say it; keep the raw seconds.
        return {"@value": str(seconds), "@type": "xsd:integer"}
    return {"@value": text, "@type": "xsd:dateTime"}


def _iri_or_label(text: str, node_type: str) -> dict[str, Any]:
    if _is_iri(text):
        return {"@id": text}
    return {"@type": node_type, "rdfs:label": text}


def _spatial(text: str) -> dict[str, Any]:
    if _WKT.match(text):
        return {"@type": "dct:Location", "dcat:bbox": {"@value": text, "@type": "gsp:wktLiteral"}}
    box = _BBOX.fullmatch(text)
    if box:
        w, s, e, n = box.groups()
        wkt = f"POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))"
        return {"@type": "dct:Location", "dcat:bbox": {"@value": wkt, "@type": "gsp:wktLiteral"}}
    if _is_iri(text):
        return {"@id": text}
    return {"@type": "dct:Location", "locn:geographicName": text}


def to_dcat_jsonld(desc: Descriptor) -> dict[str, Any]:
    """Export ``desc`` as a DCAT-3 ``dcat:Dataset`` in compact JSON-LD."""
    dataset_id = str(desc.dataset_id)
    org = str(desc.dataset_id.org)
    node: dict[str, Any] = {
        "@context": dict(DCAT_CONTEXT),
        "@id": dataset_id,
        "@type": "dcat:Dataset",
        "dct:identifier": dataset_id,
        "dct:title": desc.title,
        "dct:publisher": {"@id": org, "@type": "foaf:Agent"},
        "dct:issued": _datetime(desc.issued),
        "dct:modified": _datetime(desc.modified),
    }
    if desc.description:
        node["dct:description"] = desc.description
    if desc.keywords:
        node["dcat:keyword"] = list(desc.keywords)
    if desc.themes:
        node["dcat:theme"] = [
            {"@id": t} if _is_iri(t) else {"@type": "skos:Concept", "skos:prefLabel": t}
            for t in desc.themes
        ]
    if desc.license:
        node["dct:license"] = _iri_or_label(desc.license, "dct:LicenseDocument")
    if desc.version:
        node["dcat:version"] = desc.version
    if desc.schema:
        node["dct:conformsTo"] = _iri_or_label(desc.schema, "dct:Standard")
    if desc.temporal is not None:
        node["dct:temporal"] = {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": _datetime(desc.temporal[0]),
            "dcat:endDate": _datetime(desc.temporal[1]),
        }
    if desc.spatial is not None:
        node["dct:spatial"] = _spatial(desc.spatial)
    distributions = []
    for d in desc.distributions:
        dist: dict[str, Any] = {"@type": "dcat:Distribution"}
        if d.title:
            dist["dct:title"] = d.title
        if _MEDIA_TYPE.fullmatch(d.media_type):
            dist["dcat:mediaType"] = {"@id": _IANA_MEDIA_TYPES + d.media_type.lower()}
        else:
            dist["dct:format"] = d.media_type
        dist["dcat:accessURL"] = {"@id": d.access if _is_iri(d.access) else dataset_id}
        if d.byte_size is not None:
            dist["dcat:byteSize"] = {"@value": str(d.byte_size), "@type": "xsd:nonNegativeInteger"}
        distributions.append(dist)
    if distributions:
        node["dcat:distribution"] = distributions
    pol = desc.access_policy
    node["dct:accessRights"] = {"@id": _ACCESS_RIGHTS + _ACCESS_RIGHT_OF_MODE[pol.mode]}
    if pol.mode != "closed":
        permission: dict[str, Any] = {"odrl:action": {"@id": "odrl:use"}}
        constraints = []
        if pol.purposes:
            constraints.append(
                {
                    "odrl:leftOperand": {"@id": "odrl:purpose"},
                    "odrl:operator": {"@id": "odrl:isAnyOf"},
                    "odrl:rightOperand": list(pol.purposes),
                }
            )
        if pol.allowed_orgs:
            permission["odrl:assignee"] = [{"@id": str(o)} for o in pol.allowed_orgs]
        if constraints:
            permission["odrl:constraint"] = constraints
        node["odrl:hasPolicy"] = {
            "@type": "odrl:Offer" if pol.mode == "request" else "odrl:Set",
            "odrl:assigner": {"@id": org},
            "odrl:permission": [permission],
        }
    return node
