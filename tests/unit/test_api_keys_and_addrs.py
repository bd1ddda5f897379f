"""The API's key mapping (dataset ids stand for their DHT and provider keys) and address rule."""

from __future__ import annotations

import pytest

from datanet.api.routes import _dht_key, _provider_key, transport_addrs
from datanet.errors import DatanetError
from datanet.records.ids import DatasetId
from datanet.testing import ORG_A

DID = f"dn://{ORG_A.org_id}/weather/stations"


def test_a_dataset_id_is_its_descriptor_key_for_get_and_put() -> None:
    assert _dht_key(DID) == DatasetId.parse(DID).dht_key()
    assert _dht_key("/pk/abc") == b"/pk/abc"


def test_both_spellings_of_a_dataset_find_its_providers() -> None:
    wanted = DatasetId.parse(DID).provider_key()
    assert _provider_key(DID) == wanted
    assert _provider_key(DatasetId.parse(DID).dht_key().decode()) == wanted
    assert _provider_key("/dn/k/x") == b"/dn/k/x"  # not a dataset's key: as is


def test_a_malformed_dataset_id_is_refused() -> None:
    with pytest.raises(DatanetError):
        _dht_key("dn://nope")


def test_addresses_never_carry_the_peer_id() -> None:
    peer = "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"
    assert transport_addrs([f"/ip4/127.0.0.1/tcp/1/p2p/{peer}", "/ip4/127.0.0.1/tcp/1"]) == [
        "/ip4/127.0.0.1/tcp/1"
    ]
    relay = f"/ip4/127.0.0.1/tcp/2/p2p/{peer}/p2p-circuit"
    assert transport_addrs([relay]) == [relay]
