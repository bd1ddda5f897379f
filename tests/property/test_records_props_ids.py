"""Property tests: dataset identifiers round-trip and fail only with DecodeError."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.errors import DecodeError
from datanet.records.ids import MAX_NAME_LEN, DatasetId
from identity.keys import KeyPair, OrgId

SETTINGS = settings(derandomize=True, max_examples=300, deadline=None)

FIRST = string.ascii_lowercase + string.digits
REST = FIRST + "._-"

orgs = st.binary(min_size=32, max_size=32).map(lambda seed: KeyPair.from_seed(seed).org_id)
segments = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(FIRST),
    st.text(alphabet=REST, max_size=63),
).filter(lambda s: ".." not in s)
names = (
    st.lists(segments, min_size=1, max_size=8)
    .map("/".join)
    .filter(lambda n: len(n) <= MAX_NAME_LEN)
)


@SETTINGS
@given(orgs, names)
def test_valid_ids_round_trip(org: OrgId, name: str) -> None:
    dataset_id = DatasetId(org, name)
    text = str(dataset_id)
    assert text == f"dn://{org}/{name}"
    assert DatasetId.parse(text) == dataset_id
    assert DatasetId.from_dht_key(dataset_id.dht_key()) == dataset_id


@SETTINGS
@given(orgs, names, st.data())
def test_upper_case_is_refused(org: OrgId, name: str, data: st.DataObject) -> None:
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    if not letters:
        return
    i = data.draw(st.sampled_from(letters))
    bad = name[:i] + name[i].upper() + name[i + 1 :]
    with pytest.raises(DecodeError, match="lower-case"):
        DatasetId.parse(f"dn://{org}/{bad}")


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_decode_error(text: str) -> None:
    for candidate in (text, "dn://" + text, f"dn://{KeyPair.from_seed(bytes(32)).org_id}/{text}"):
        try:
            parsed = DatasetId.parse(candidate)
        except DecodeError:
            continue
        assert str(parsed) == candidate
