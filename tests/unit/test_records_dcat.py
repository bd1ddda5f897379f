"""DCAT-3 JSON-LD export."""

from __future__ import annotations

import json

import pytest

from datanet.records.dcat import DCAT_CONTEXT, to_dcat_jsonld
from datanet.records.descriptor import AccessPolicy, Descriptor, Distribution
from datanet.records.ids import DatasetId
from identity.keys import KeyPair

ORG = KeyPair.from_seed(b"o" * 32).org_id
ORG2 = KeyPair.from_seed(b"p" * 32).org_id
NODE = KeyPair.from_seed(b"n" * 32).peer_id


def make(**kw: object) -> Descriptor:
    fields: dict[str, object] = {
        "dataset_id": DatasetId(ORG, "weather/stations"),
        "title": "Weather stations",
        "description": "Hourly.",
        "keywords": ("weather", "wind"),
        "themes": ("http://publications.europa.eu/resource/authority/data-theme/ENVI", "climate"),
        "publisher_node": NODE,
        "license": "https://creativecommons.org/licenses/by/4.0/",
        "version": "1.2",
        "issued": 1_700_000_000,
        "modified": 1_700_086_400,
        "schema": "https://example.org/s.json",
        "distributions": (
            Distribution("text/csv", "Table", "request", 2048),
            Distribution("application/json", "", "https://example.org/api", None),
        ),
        "temporal": (1_577_836_800, 1_609_459_199),
        "spatial": "13.08,52.33,13.76,52.68",
        "access_policy": AccessPolicy("request", (ORG2,), ("research",), 90),
        "sequence": 3,
        "expires": 1_800_000_000,
    }
    fields.update(kw)
    return Descriptor(**fields)  # type: ignore[arg-type]


def test_required_dcat_keys() -> None:
    doc = to_dcat_jsonld(make())
    json.dumps(doc)
    ctx = doc["@context"]
    assert ctx["dcat"] == "http://www.w3.org/ns/dcat#"
    assert ctx["dct"] == "http://purl.org/dc/terms/"
    assert ctx["foaf"] == "http://xmlns.com/foaf/0.1/"
    assert ctx["xsd"] == "http://www.w3.org/2001/XMLSchema#"
    assert doc["@type"] == "dcat:Dataset"
    dataset_id = f"dn://{ORG}/weather/stations"
    assert doc["@id"] == doc["dct:identifier"] == dataset_id
    assert doc["dct:title"] == "Weather stations"
    assert doc["dct:description"] == "Hourly."
    assert doc["dcat:keyword"] == ["weather", "wind"]
    assert doc["dcat:theme"] == [
        {"@id": "http://publications.europa.eu/resource/authority/data-theme/ENVI"},
        {"@type": "skos:Concept", "skos:prefLabel": "climate"},
    ]
    assert doc["dct:license"] == {"@id": "https://creativecommons.org/licenses/by/4.0/"}
    assert doc["dct:publisher"] == {"@id": str(ORG), "@type": "foaf:Agent"}
    assert doc["dct:issued"] == {"@value": "2023-11-14T22:13:20Z", "@type": "xsd:dateTime"}
    assert doc["dct:modified"] == {"@value": "2023-11-15T22:13:20Z", "@type": "xsd:dateTime"}
    assert doc["dcat:version"] == "1.2"
    assert doc["dct:conformsTo"] == {"@id": "https://example.org/s.json"}
    assert doc["dct:temporal"] == {
        "@type": "dct:PeriodOfTime",
        "dcat:startDate": {"@value": "2020-01-01T00:00:00Z", "@type": "xsd:dateTime"},
        "dcat:endDate": {"@value": "2020-12-31T23:59:59Z", "@type": "xsd:dateTime"},
    }
    first, second = doc["dcat:distribution"]
    assert first == {
        "@type": "dcat:Distribution",
        "dct:title": "Table",
        "dcat:mediaType": {"@id": "https://www.iana.org/assignments/media-types/text/csv"},
        "dcat:accessURL": {"@id": dataset_id},
        "dcat:byteSize": {"@value": "2048", "@type": "xsd:nonNegativeInteger"},
    }
    assert second["dcat:accessURL"] == {"@id": "https://example.org/api"}
    assert "dcat:byteSize" not in second
    assert set(DCAT_CONTEXT) <= set(ctx)


def test_spatial_forms() -> None:
    bbox = to_dcat_jsonld(make())["dct:spatial"]
    assert bbox["@type"] == "dct:Location"
    assert bbox["dcat:bbox"] == {
        "@value": "POLYGON((13.08 52.33, 13.76 52.33, 13.76 52.68, 13.08 52.68, 13.08 52.33))",
        "@type": "gsp:wktLiteral",
    }
    wkt = to_dcat_jsonld(make(spatial="POINT(13.4 52.5)"))["dct:spatial"]
    assert wkt["dcat:bbox"]["@value"] == "POINT(13.4 52.5)"
    uri = to_dcat_jsonld(make(spatial="https://sws.geonames.org/2950159/"))["dct:spatial"]
    assert uri == {"@id": "https://sws.geonames.org/2950159/"}
    name = to_dcat_jsonld(make(spatial="Berlin"))["dct:spatial"]
    assert name == {"@type": "dct:Location", "locn:geographicName": "Berlin"}


def test_labels_when_not_iris() -> None:
    doc = to_dcat_jsonld(make(license="CC-BY-4.0", schema="one row per station and hour"))
    assert doc["dct:license"] == {"@type": "dct:LicenseDocument", "rdfs:label": "CC-BY-4.0"}
    assert doc["dct:conformsTo"]["rdfs:label"] == "one row per station and hour"


@pytest.mark.parametrize(
    ("mode", "right", "policy_type"),
    [
        ("open", "PUBLIC", "odrl:Set"),
        ("request", "RESTRICTED", "odrl:Offer"),
        ("closed", "NON_PUBLIC", None),
    ],
)
def test_access_policy_mapping(mode: str, right: str, policy_type: str | None) -> None:
    doc = to_dcat_jsonld(make(access_policy=AccessPolicy(mode, (ORG2,), ("research",), 9)))  # type: ignore[arg-type]
    assert doc["dct:accessRights"]["@id"].endswith("/access-right/" + right)
    if policy_type is None:
        assert "odrl:hasPolicy" not in doc
        return
    policy = doc["odrl:hasPolicy"]
    assert policy["@type"] == policy_type
    assert policy["odrl:assigner"] == {"@id": str(ORG)}
    (permission,) = policy["odrl:permission"]
    assert permission["odrl:assignee"] == [{"@id": str(ORG2)}]
    assert permission["odrl:constraint"][0]["odrl:rightOperand"] == ["research"]


def test_optional_fields_are_left_out() -> None:
    doc = to_dcat_jsonld(
        make(
            description="",
            keywords=(),
            themes=(),
            license="",
            version="",
            schema="",
            distributions=(),
            temporal=None,
            spatial=None,
        )
    )
    for key in (
        "dct:description",
        "dcat:keyword",
        "dcat:theme",
        "dct:license",
        "dcat:version",
        "dct:conformsTo",
        "dcat:distribution",
        "dct:temporal",
        "dct:spatial",
    ):
        assert key not in doc
    json.dumps(doc)


def test_odd_media_type_goes_to_format_and_huge_times_stay_integers() -> None:
    doc = to_dcat_jsonld(make(distributions=(Distribution("CSV table"),), temporal=(0, 2**62)))
    (dist,) = doc["dcat:distribution"]
    assert dist["dct:format"] == "CSV table"
    assert "dcat:mediaType" not in dist
    assert doc["dct:temporal"]["dcat:endDate"] == {"@value": str(2**62), "@type": "xsd:integer"}
