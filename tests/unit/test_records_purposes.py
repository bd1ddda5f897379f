"""The purpose vocabulary: terms, parents, aliases, canonical ids, satisfaction."""

from __future__ import annotations

import pytest

from datanet.errors import InvalidInput
from datanet.records.policy import MAX_PURPOSE
from datanet.records.purposes import (
    ALIASES,
    DPV_NAMESPACE,
    PURPOSES,
    canonical_purpose,
    purpose_ancestors,
    purpose_satisfies,
)


def test_vocabulary_shape() -> None:
    assert 20 <= len(PURPOSES) <= 35
    for pid, purpose in PURPOSES.items():
        assert purpose.id == pid
        assert len(pid) <= MAX_PURPOSE
        assert purpose.iri.startswith(DPV_NAMESPACE)
        assert purpose.parent is None or purpose.parent in PURPOSES
        assert purpose.description.endswith(".")
        assert "\n" not in purpose.description
    assert not set(ALIASES) & set(PURPOSES)
    assert set(ALIASES.values()) <= set(PURPOSES)


def test_known_terms_and_parents() -> None:
    assert PURPOSES["academic-research"].iri == "https://w3id.org/dpv#AcademicResearch"
    assert PURPOSES["academic-research"].parent == "research-and-development"
    assert PURPOSES["research-and-development"].parent is None
    # DPV 2: fraud prevention sits under misuse prevention, under security
    assert purpose_ancestors("fraud-prevention-and-detection") == (
        "fraud-prevention-and-detection",
        "misuse-prevention-and-detection",
        "enforce-security",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("academic-research", "academic-research"),
        ("research", "research-and-development"),
        ("AcademicResearch", "academic-research"),
        ("https://w3id.org/dpv#ScientificResearch", "scientific-research"),
        ("  Academic Research ", "academic-research"),
        ("personalization", "personalisation"),
    ],
)
def test_canonical_purpose(text: str, expected: str) -> None:
    assert canonical_purpose(text) == expected


def test_unknown_purpose_suggests_close_matches() -> None:
    with pytest.raises(
        InvalidInput, match=r"unknown purpose 'acadmic-research'.*academic-research"
    ):
        canonical_purpose("acadmic-research")
    with pytest.raises(InvalidInput, match="datanet purposes"):
        canonical_purpose("\x1b[31mred")


def test_purpose_satisfies() -> None:
    assert purpose_satisfies("academic-research", "academic-research")
    assert purpose_satisfies("academic-research", "research-and-development")
    assert purpose_satisfies("academic-research", "research")  # an alias in the policy
    assert not purpose_satisfies("research-and-development", "academic-research")
    assert not purpose_satisfies("marketing", "research-and-development")
    # a policy's free text (written before the vocabulary) matches only itself
    assert purpose_satisfies("urban-planning", "urban-planning")
    assert not purpose_satisfies("academic-research", "urban-planning")
