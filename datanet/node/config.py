"""The node's TOML configuration: one table of documented settings.

The file is ``config.toml`` in the data directory (:mod:`datanet.node.paths`).
Every setting has a dotted key (``api.address``), a type, a default and a line of
help; :data:`SETTINGS` is the single source of truth for all of them
(``docs/operators.md`` lists the same table and a test keeps the two in step).

Invariants:
* A :class:`Config` is always valid: loading, parsing and :meth:`Config.with_value`
  check every value and the cross-field rules, and raise :class:`ConfigError`
  (a :class:`~datanet.errors.InvalidInput`) with the offending key in the message.
* Unknown keys and sections are refused, so a typo never silently falls back to a
  default.
* Code reads settings through typed, frozen sections (``config.dht.value_quorum``,
  ``config.api.max_body_bytes``): one dataclass per TOML table, one field per
  setting, with the setting's type. :data:`SECTIONS` is checked against
  :data:`SETTINGS` when this module loads, so the two cannot drift apart.
* The control API listens on a loopback address unless ``api.allow_remote`` is true.
* :func:`render_config` writes every setting with its help as a comment; files are
  replaced atomically, so a crash never leaves half a config.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from datanet.errors import ConfigError
from identity.keystore import atomic_write, read_at_most

__all__ = [
    "ADMISSION_MODES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "SECTIONS",
    "SETTINGS",
    "ApiSettings",
    "Config",
    "ConfigError",
    "ConfigFile",
    "DhtSettings",
    "LimitsSettings",
    "LogSettings",
    "MetricsSettings",
    "NetworkSettings",
    "Setting",
    "load_config",
    "parse_api_address",
    "render_config",
    "save_config",
]

ADMISSION_MODES = ("closed", "members", "open")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
MAX_CONFIG_FILE_BYTES = 256 * 1024
_MAX_LIST_ITEMS = 64
_MAX_TEXT = 1024

_Value = str | int | float | bool | tuple[str, ...]


# --- value checks -------------------------------------------------------------------

_IP_PROTOCOLS = {"ip4", "ip6", "dns", "dns4", "dns6"}
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$")
_PEER_ID_TEXT = re.compile(r"^12D3KooW[1-9A-HJ-NP-Za-km-z]{44,46}$")


def _check_multiaddr(text: str, *, need_peer: bool) -> None:
    """Check the shape of a TCP multiaddr such as ``/ip4/1.2.3.4/tcp/4001[/p2p/12D3KooW…]``.

    Only what datanet dials or listens on is accepted: an IP or DNS host, a TCP port,
    and for bootstrap peers the ``/p2p/`` peer id that Noise will authenticate.
    """
    parts = text.split("/")
    if len(parts) < 5 or parts[0] != "":
        raise ValueError("expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>")
    proto, host, transport, port = parts[1:5]
    if proto not in _IP_PROTOCOLS:
        raise ValueError(f"unsupported address protocol {proto!r}")
    try:
        if proto == "ip4":
            ipaddress.IPv4Address(host)
        elif proto == "ip6":
            ipaddress.IPv6Address(host)
        elif not _DNS_NAME.match(host):
            raise ValueError(f"not a DNS name: {host!r}")
    except ipaddress.AddressValueError as exc:
        raise ValueError(str(exc)) from None
    if transport != "tcp":
        raise ValueError("only /tcp/ transports are supported")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad TCP port {port!r}")
    rest = parts[5:]
    if need_peer:
        if len(rest) != 2 or rest[0] != "p2p" or not _PEER_ID_TEXT.match(rest[1]):
            raise ValueError("a bootstrap address must end with /p2p/<peer id 12D3KooW…>")
    elif rest and not (len(rest) == 2 and rest[0] == "p2p" and _PEER_ID_TEXT.match(rest[1])):
        raise ValueError("unexpected components after /tcp/<port>")


def parse_api_address(text: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into an IP literal and a port.

    Raises:
        ConfigError: not ``host:port`` with an IP address (or ``localhost``) and a port.
    """
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", text)
    if not match:
        raise ConfigError(f"api.address must be host:port, got {text[:80]!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"api.address host must be an IP address, got {host[:80]!r}") from None
    if port > 65535:
        raise ConfigError(f"api.address port {port} is out of range")
    return host, port


def _is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")

    return check


def _in_range(low: float, high: float) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")

    return check


def _each(check_one: Callable[[str], None]) -> Callable[[Any], None]:
    def check(values: Any) -> None:
        for item in values:
            try:
                check_one(item)
            except ValueError as exc:
                raise ValueError(f"{item[:120]!r}: {exc}") from None

    return check


def _check_api_address(value: Any) -> None:
    try:
        parse_api_address(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


# --- the table of settings ----------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One documented setting: dotted key, type, default, help, and its own check."""

    key: str
    kind: type
    default: _Value
    help: str
    check: Callable[[Any], None] | None = None

    @property
    def section(self) -> str:
        """The TOML table that holds it (``api`` for ``api.address``)."""
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        """The key inside its table (``address`` for ``api.address``)."""
        return self.key.split(".", 1)[1]


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "network.listen",
        tuple,
        ("/ip4/0.0.0.0/tcp/4001",),
        "multiaddrs the libp2p host listens on (TCP; port 0 picks a free port)",
        _each(lambda a: _check_multiaddr(a, need_peer=False)),
    ),
    Setting(
        "network.announce",
        tuple,
        (),
        "multiaddrs announced to peers instead of the listen addresses (empty: listen addrs)",
        _each(lambda a: _check_multiaddr(a, need_peer=False)),
    ),
    Setting(
        "network.bootstrap",
        tuple,
        (),
        "peers dialled at start, each /ip4|dns…/tcp/<port>/p2p/<peer id>",
        _each(lambda a: _check_multiaddr(a, need_peer=True)),
    ),
    Setting(
        "network.admission",
        str,
        "members",
        "who may use datanet protocols: closed (trusted orgs), members (any org), open",
        _one_of(ADMISSION_MODES),
    ),
    Setting(
        "api.address",
        str,
        "127.0.0.1:5080",
        "host:port of the HTTP control API (loopback unless api.allow_remote)",
        _check_api_address,
    ),
    Setting(
        "api.allow_remote",
        bool,
        False,
        "allow a non-loopback api.address (put TLS and a firewall in front of it)",
    ),
    Setting(
        "api.max_body_bytes",
        int,
        65536,
        "largest request body the control API accepts, in bytes",
        _in_range(1024, 16 * 1024 * 1024),
    ),
    Setting(
        "api.request_timeout",
        float,
        30.0,
        "seconds an API call may take before it fails with a timeout error",
        _in_range(0.1, 3600),
    ),
    Setting(
        "log.level",
        str,
        "info",
        "least severe log level written: debug, info, warning, error",
        _one_of(LOG_LEVELS),
    ),
    Setting(
        "log.format",
        str,
        "text",
        "log line format: text (key=value) or json (one object per line)",
        _one_of(LOG_FORMATS),
    ),
    Setting(
        "log.libp2p_level",
        str,
        "warning",
        "least severe level written for py-libp2p's internals (libp2p.*, multiaddr.*), "
        "apart from log.level",
        _one_of(LOG_LEVELS),
    ),
    Setting(
        "limits.max_connections",
        int,
        256,
        "most simultaneous peer connections",
        _in_range(1, 100_000),
    ),
    Setting(
        "limits.inbound_streams_per_peer",
        int,
        8,
        "most concurrent inbound protocol streams one peer may hold open",
        _in_range(1, 1024),
    ),
    Setting(
        "limits.request_timeout",
        float,
        5.0,
        "seconds to wait for one peer to answer one request",
        _in_range(0.05, 600),
    ),
    Setting(
        "limits.record_store_bytes",
        int,
        64 * 1024 * 1024,
        "bytes of DHT records held for other peers before the oldest are evicted",
        _in_range(1024 * 1024, 1 << 40),
    ),
    Setting(
        "limits.handshake_timeout",
        float,
        3.0,
        "seconds an inbound connection has to finish its Noise and Yamux handshake",
        _in_range(0.5, 60),
    ),
    Setting(
        "limits.max_pending_handshakes",
        int,
        64,
        "most inbound connections handshaking at once, all addresses together",
        _in_range(4, 100_000),
    ),
    Setting(
        "limits.pending_per_address",
        int,
        8,
        "most inbound connections handshaking at once from one IP that is not a member's",
        _in_range(1, 100_000),
    ),
    Setting(
        "limits.connections_per_address",
        int,
        64,
        "most inbound connections from one IP that are not (yet) admitted members'",
        _in_range(1, 100_000),
    ),
    Setting(
        "limits.refused_ttl",
        float,
        30.0,
        "seconds a peer refused for its certificate has its next connections closed at once",
        _in_range(1, 86_400),
    ),
    Setting(
        "dht.value_quorum",
        int,
        4,
        "a DHT get stops once this many peers returned a valid value (0: ask all k closest)",
        _in_range(0, 20),
    ),
    Setting(
        "dht.put_quorum",
        int,
        4,
        "publish answers once this many peers stored the record; the other writes go on "
        "in the background (0: wait for every write)",
        _in_range(0, 20),
    ),
    Setting(
        "dht.stranger_providers_per_peer",
        int,
        20,
        "new provider records one non-member peer may add per hour",
        _in_range(0, 100_000),
    ),
    Setting(
        "dht.stranger_providers_per_address",
        int,
        40,
        "new provider records all non-member peers from one IP may add per hour",
        _in_range(0, 100_000),
    ),
    Setting(
        "dht.stranger_providers_total",
        int,
        1024,
        "provider records of non-member peers kept in total (the oldest make room)",
        _in_range(0, 1_000_000),
    ),
    Setting(
        "metrics.public",
        bool,
        False,
        "serve GET /metrics (Prometheus) without the API token (the rest of the API keeps it)",
    ),
)

_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}
_SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(s.section for s in SETTINGS))


# --- typed sections -----------------------------------------------------------------


@dataclass(frozen=True)
class NetworkSettings:
    """``[network]``: where the libp2p host listens, what it announces, whom it admits."""

    listen: tuple[str, ...]
    announce: tuple[str, ...]
    bootstrap: tuple[str, ...]
    admission: str


@dataclass(frozen=True)
class ApiSettings:
    """``[api]``: the HTTP control API."""

    address: str
    allow_remote: bool
    max_body_bytes: int
    request_timeout: float

    @property
    def host_port(self) -> tuple[str, int]:
        """``address`` split into an IP literal and a port."""
        return parse_api_address(self.address)


@dataclass(frozen=True)
class LogSettings:
    """``[log]``: what the daemon logs, and how."""

    level: str
    format: str
    libp2p_level: str


@dataclass(frozen=True)
class LimitsSettings:
    """``[limits]``: per-peer and per-node resource limits."""

    max_connections: int
    inbound_streams_per_peer: int
    request_timeout: float
    record_store_bytes: int
    handshake_timeout: float
    max_pending_handshakes: int
    pending_per_address: int
    connections_per_address: int
    refused_ttl: float


@dataclass(frozen=True)
class DhtSettings:
    """``[dht]``: Kademlia behaviour and what strangers may make the node store."""

    value_quorum: int
    put_quorum: int
    stranger_providers_per_peer: int
    stranger_providers_per_address: int
    stranger_providers_total: int


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: the Prometheus endpoint."""

    public: bool


#: The typed section of each TOML table, in the order of :data:`SETTINGS`.
SECTIONS: Mapping[str, type] = {
    "network": NetworkSettings,
    "api": ApiSettings,
    "log": LogSettings,
    "limits": LimitsSettings,
    "dht": DhtSettings,
    "metrics": MetricsSettings,
}


def _check_sections() -> None:
    """Fail at import if the typed sections and the settings table disagree."""
    expected: dict[str, dict[str, object]] = {}
    for setting in SETTINGS:
        hint = tuple[str, ...] if setting.kind is tuple else setting.kind
        expected.setdefault(setting.section, {})[setting.name] = hint
    actual = {name: get_type_hints(cls) for name, cls in SECTIONS.items()}
    if actual != expected or list(actual) != list(expected):
        raise AssertionError(f"config sections {actual} do not match SETTINGS {expected}")


_check_sections()


def _setting(key: str) -> Setting:
    try:
        return _BY_KEY[key]
    except KeyError:
        known = ", ".join(_BY_KEY)
        raise ConfigError(f"unknown config key {key[:80]!r}; known keys: {known}") from None


def _coerce(setting: Setting, value: object) -> _Value:
    """Check a typed value (from TOML or JSON) against ``setting``; return its canonical form.

    Raises:
        ConfigError: wrong type or a value the setting's check refuses.
    """
    key = setting.key
    kind = setting.kind
    result: _Value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false")
        result = value
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer")
        result = value
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number")
        result = float(value)
        if not math.isfinite(result):
            raise ConfigError(f"{key} must be a finite number")
    elif kind is str:
        if not isinstance(value, str) or len(value) > _MAX_TEXT:
            raise ConfigError(f"{key} must be a string of at most {_MAX_TEXT} characters")
        result = value
    else:
        if not isinstance(value, list | tuple) or len(value) > _MAX_LIST_ITEMS:
            raise ConfigError(f"{key} must be a list of at most {_MAX_LIST_ITEMS} strings")
        if not all(isinstance(v, str) and len(v) <= _MAX_TEXT for v in value):
            raise ConfigError(f"{key} must be a list of strings")
        result = tuple(value)
    if setting.check is not None:
        try:
            setting.check(result)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    return result


def _parse_text(setting: Setting, text: str) -> object:
    """Turn command-line text into a typed value for ``setting`` (before checking it)."""
    kind = setting.kind
    if kind is str:
        return text
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{setting.key} must be true or false, got {text[:80]!r}")
    if kind is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ConfigError(f"{setting.key} must be an integer, got {text[:80]!r}") from None
    if kind is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ConfigError(f"{setting.key} must be a number, got {text[:80]!r}") from None
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            parsed = tomllib.loads(f"v = {stripped}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{setting.key}: not a list: {exc}") from None
        return list(parsed)
    return [item.strip() for item in stripped.split(",") if item.strip()]


# --- the config object --------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """A complete, validated configuration (every setting has a value).

    ``values`` holds every setting by dotted key (for ``config show/set`` and the
    TOML file); the typed sections are the same values for code to read.
    """

    values: Mapping[str, _Value]
    network: NetworkSettings = field(init=False, repr=False, compare=False)
    api: ApiSettings = field(init=False, repr=False, compare=False)
    log: LogSettings = field(init=False, repr=False, compare=False)
    limits: LimitsSettings = field(init=False, repr=False, compare=False)
    dht: DhtSettings = field(init=False, repr=False, compare=False)
    metrics: MetricsSettings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for section, cls in SECTIONS.items():
            fields = {s.name: self.values[s.key] for s in SETTINGS if s.section == section}
            object.__setattr__(self, section, cls(**fields))

    @classmethod
    def defaults(cls) -> Config:
        """The documented defaults."""
        return cls({s.key: s.default for s in SETTINGS})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Config:
        """Build from a parsed TOML document (``{"api": {"address": …}, …}``).

        Missing settings take their defaults.

        Raises:
            ConfigError: an unknown section or key, a wrong type, a refused value.
        """
        values: dict[str, _Value] = {s.key: s.default for s in SETTINGS}
        for section, table in data.items():
            if section not in _SECTIONS:
                raise ConfigError(
                    f"unknown config section [{str(section)[:40]}]; known: {', '.join(_SECTIONS)}"
                )
            if not isinstance(table, dict):
                raise ConfigError(f"[{section}] must be a table")
            for name, value in table.items():
                setting = _setting(f"{section}.{name}")
                values[setting.key] = _coerce(setting, value)
        config = cls(values)
        config.check()
        return config

    def check(self) -> None:
        """Check the rules that span several settings.

        Raises:
            ConfigError: a non-loopback ``api.address`` without ``api.allow_remote``.
        """
        host, _ = self.api.host_port
        if not _is_loopback(host) and not self.api.allow_remote:
            raise ConfigError(
                f"api.address {self.api.address} is not a loopback address; the control API "
                "gives full control of the node, so set api.allow_remote = true to allow it"
            )

    def __getitem__(self, key: str) -> _Value:
        return self.values[_setting(key).key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def with_value(self, key: str, value: object) -> Config:
        """A copy with ``key`` set to ``value``.

        ``value`` may be typed (``True``, ``8``, ``["/ip4/…"]``) or command-line text
        (``"true"``, ``"8"``, ``"/ip4/…,/ip4/…"``, ``'["/ip4/…"]'``) for non-string keys.

        Raises:
            ConfigError: unknown key, a value of the wrong type, or a refused value.
        """
        setting = _setting(key)
        if isinstance(value, str) and setting.kind is not str:
            value = _parse_text(setting, value)
        new = Config({**self.values, key: _coerce(setting, value)})
        new.check()
        return new

    def to_mapping(self) -> dict[str, dict[str, Any]]:
        """The nested, JSON- and TOML-safe form (lists, not tuples)."""
        out: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}
        for setting in SETTINGS:
            value = self.values[setting.key]
            out[setting.section][setting.name] = list(value) if isinstance(value, tuple) else value
        return out


def _toml_value(value: _Value) -> str:
    """One value as inline TOML (JSON string escapes are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(json.dumps(item) for item in value) + "]"


def render_config(config: Config) -> str:
    """The TOML text of ``config``, every setting preceded by its help and default."""
    lines = [
        "# datanet node configuration. Every key is documented in docs/operators.md.",
        "# Change it with `datanet config set KEY VALUE`; restart the node to apply.",
    ]
    for section in _SECTIONS:
        lines += ["", f"[{section}]"]
        for setting in SETTINGS:
            if setting.section != section:
                continue
            default = _toml_value(setting.default)
            lines.append(f"# {setting.help} (default: {default})")
            lines.append(f"{setting.name} = {_toml_value(config.values[setting.key])}")
    return "\n".join(lines) + "\n"


def load_config(path: Path) -> Config:
    """Read and validate a config file; a missing file means all defaults.

    Raises:
        ConfigError: the file is too big, not UTF-8 TOML, or holds a refused setting.
    """
    try:
        with path.open("rb") as fh:
            data = read_at_most(fh, MAX_CONFIG_FILE_BYTES)
    except FileNotFoundError:
        return Config.defaults()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_FILE_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_CONFIG_FILE_BYTES} bytes")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return Config.from_mapping(doc)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_config(path: Path, config: Config) -> None:
    """Write ``config`` to ``path`` atomically (:func:`identity.keystore.atomic_write`).

    Raises:
        ConfigError: the directory is not writable.
    """
    try:
        atomic_write(path, render_config(config).encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


class ConfigFile:
    """A config file on disk, read fresh on every call (the daemon never caches it).

    ``set`` re-reads, changes one key, checks and writes atomically, so a concurrent
    edit by hand is never half-overwritten: one of the two versions wins whole.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Config:
        """The file's settings (defaults if it does not exist).

        Raises:
            ConfigError: the file is unreadable or invalid.
        """
        return load_config(self.path)

    def set(self, key: str, value: object) -> Config:
        """Set ``key`` to ``value`` in the file and return the new settings.

        Raises:
            ConfigError: unknown key, refused value, or the file cannot be written.
        """
        new = self.read().with_value(key, value)
        save_config(self.path, new)
        return new
