"""datanet.node.config: defaults, loading, validation, set, render round trip, docs in step."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.errors import InvalidInput
from datanet.node.config import (
    SECTIONS,
    SETTINGS,
    Config,
    ConfigError,
    ConfigFile,
    load_config,
    parse_api_address,
    render_config,
    save_config,
)

PEER = "12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf"
ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_documented_values() -> None:
    c = Config.defaults()
    assert c["api.address"] == "127.0.0.1:5080"
    assert c["api.allow_remote"] is False
    assert c["network.admission"] == "members"
    assert c["network.bootstrap"] == ()
    assert c.api.host_port == ("127.0.0.1", 5080)
    assert c.log.level == "info"


def test_typed_sections_hold_every_setting_with_its_type() -> None:
    c = Config.defaults().with_value("dht.value_quorum", 7).with_value("log.format", "json")
    for setting in SETTINGS:
        section = getattr(c, setting.section)
        assert isinstance(section, SECTIONS[setting.section])
        value = getattr(section, setting.name)
        assert value == c[setting.key]
        assert isinstance(value, setting.kind)
    assert c.dht.value_quorum == 7
    assert c.log.format == "json"
    assert c.limits.request_timeout == 5.0
    assert c.network.admission == "members"
    with pytest.raises(AttributeError):
        c.dht.value_quorum = 3  # type: ignore[misc]  # frozen
    assert [s.section for s in SETTINGS] == sorted(
        (s.section for s in SETTINGS), key=list(SECTIONS).index
    )


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "nope.toml") == Config.defaults()


def test_render_round_trips_and_comments_every_key(tmp_path: Path) -> None:
    c = Config.defaults().with_value("network.bootstrap", f"/ip4/10.0.0.1/tcp/4001/p2p/{PEER}")
    c = c.with_value("log.format", "json").with_value("limits.request_timeout", "2.5")
    text = render_config(c)
    for s in SETTINGS:
        assert f"# {s.help}" in text
    path = tmp_path / "config.toml"
    save_config(path, c)
    assert load_config(path) == c
    assert oct(path.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"apii": {}}, "unknown config section"),
        ({"api": {"adress": "127.0.0.1:1"}}, "unknown config key 'api.adress'"),
        ({"api": {"allow_remote": "yes"}}, "api.allow_remote must be true or false"),
        ({"api": {"max_body_bytes": True}}, "must be an integer"),
        ({"api": {"max_body_bytes": 10}}, "api.max_body_bytes: must be between"),
        ({"api": {"request_timeout": "1"}}, "must be a number"),
        ({"api": "x"}, "[api] must be a table"),
        ({"network": {"admission": "public"}}, "must be one of closed, members, open"),
        ({"network": {"listen": "/ip4/0.0.0.0/tcp/1"}}, "must be a list"),
        ({"network": {"listen": ["/ip4/300.0.0.1/tcp/1"]}}, "network.listen"),
        ({"network": {"listen": ["/ip4/1.2.3.4/udp/1"]}}, "only /tcp/"),
        ({"network": {"listen": ["/ip4/1.2.3.4/tcp/99999"]}}, "bad TCP port"),
        ({"network": {"bootstrap": ["/ip4/1.2.3.4/tcp/4001"]}}, "must end with /p2p/"),
        ({"log": {"level": "trace"}}, "log.level"),
        ({"api": {"address": "example.org:80"}}, "must be an IP address"),
        ({"api": {"address": "127.0.0.1"}}, "must be host:port"),
    ],
)
def test_invalid_settings_are_refused_with_the_key(doc: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_mapping(doc)
    assert fragment in str(info.value)
    assert isinstance(info.value, InvalidInput)
    assert info.value.code == "invalid_config"


@pytest.mark.parametrize("address", ["0.0.0.0:5080", "192.168.1.5:5080", "[::]:5080"])
def test_non_loopback_api_needs_allow_remote(address: str) -> None:
    with pytest.raises(ConfigError, match="allow_remote"):
        Config.from_mapping({"api": {"address": address}})
    c = Config.from_mapping({"api": {"address": address, "allow_remote": True}})
    assert c.api.address == address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5080", ("127.0.0.1", 5080)),
        ("localhost:1", ("127.0.0.1", 1)),
        ("[::1]:8080", ("::1", 8080)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_parse_api_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_api_address(text) == expected


def test_with_value_parses_command_line_text() -> None:
    c = Config.defaults()
    assert c.with_value("api.allow_remote", "true")["api.allow_remote"] is True
    assert c.with_value("api.max_body_bytes", "2048")["api.max_body_bytes"] == 2048
    two = f"/ip4/1.1.1.1/tcp/1/p2p/{PEER}, /dns4/boot.example.org/tcp/4001/p2p/{PEER}"
    assert len(c.with_value("network.bootstrap", two).network.bootstrap) == 2
    arr = f'["/ip4/1.1.1.1/tcp/1/p2p/{PEER}"]'
    assert c.with_value("network.bootstrap", arr)["network.bootstrap"] == (
        f"/ip4/1.1.1.1/tcp/1/p2p/{PEER}",
    )
    assert c.with_value("network.announce", "")["network.announce"] == ()
    with pytest.raises(ConfigError, match="must be an integer"):
        c.with_value("api.max_body_bytes", "lots")
    with pytest.raises(ConfigError, match="unknown config key"):
        c.with_value("api.nope", "1")
    # Going remote without allow_remote is refused; in the other order it works.
    with pytest.raises(ConfigError, match="allow_remote"):
        c.with_value("api.address", "0.0.0.0:5080")
    c2 = c.with_value("api.allow_remote", True).with_value("api.address", "0.0.0.0:5080")
    assert c2.api.address == "0.0.0.0:5080"


def test_config_file_set_is_atomic_and_keeps_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    cf = ConfigFile(path)
    cf.set("log.level", "debug")
    before = path.read_bytes()
    with pytest.raises(ConfigError):
        cf.set("log.level", "loud")
    assert path.read_bytes() == before
    assert cf.read().log.level == "debug"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]  # no temp file left


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[api\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    path.write_text("x = '" + "a" * 300_000 + "'\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)
    path.write_text('[log]\nlevel = "loud"\n')
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_config(path)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.mkdir()  # unreadable as a file, even for root
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)


def test_operators_doc_lists_every_key_with_its_default() -> None:
    doc = (ROOT / "docs" / "operators.md").read_text()
    for s in SETTINGS:
        assert f"`{s.key}`" in doc, s.key


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from([s.key for s in SETTINGS]), value=_json_values)
def test_any_json_value_is_accepted_or_a_config_error(key: str, value: object) -> None:
    try:
        c = Config.defaults().with_value(key, value)
    except ConfigError:
        return
    # Whatever was accepted renders to TOML that loads back to the same config.
    assert Config.from_mapping(tomllib.loads(render_config(c))) == c
