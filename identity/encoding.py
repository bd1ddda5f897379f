"""Bounded MessagePack and base58 helpers shared by every record codec.

Invariant: :func:`unpack` never raises anything but :class:`DecodeError` /
:class:`RecordTooLarge`, and never allocates more than the limits allow, so it
is safe on bytes from any peer.
"""

from __future__ import annotations

from typing import Any

import base58
import msgpack

from identity.errors import DecodeError, RecordTooLarge

__all__ = ["b58decode", "b58encode", "field", "pack", "unpack", "unpack_map"]


def pack(obj: Any) -> bytes:
    """Encode ``obj`` deterministically (maps keep insertion order, bin type for bytes)."""
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def unpack(data: bytes, *, max_size: int, max_items: int = 256) -> Any:
    """Decode untrusted MessagePack bytes within hard limits.

    Args:
        data: the bytes to decode.
        max_size: the largest acceptable encoding; also bounds every string/bin.
        max_items: the largest acceptable array or map.

    Raises:
        RecordTooLarge: ``data`` is longer than ``max_size``.
        DecodeError: ``data`` is not one complete, valid MessagePack object.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise RecordTooLarge(f"encoded record is {len(data)} bytes; the limit is {max_size}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=max_size,
            max_str_len=max_size,
            max_array_len=max_items,
            max_map_len=max_items,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise DecodeError(f"not a valid MessagePack record: {exc}") from None


def unpack_map(data: bytes, *, max_size: int, max_items: int = 256) -> dict[str, Any]:
    """Decode untrusted bytes that must hold a map with string keys."""
    obj = unpack(data, max_size=max_size, max_items=max_items)
    if not isinstance(obj, dict):
        raise DecodeError(f"expected a map, got {type(obj).__name__}")
    return obj


def b58encode(data: bytes) -> str:
    """Base58btc (Bitcoin alphabet), as used by peer ids and multibase ``z``."""
    return base58.b58encode(data).decode("ascii")


def b58decode(text: str) -> bytes:
    """Decode base58btc text.

    Raises:
        DecodeError: ``text`` contains characters outside the alphabet.
    """
    try:
        return base58.b58decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise DecodeError(f"not base58btc: {exc}") from None


def field(
    obj: dict[str, Any], name: str, kind: type | tuple[type, ...], *, max_len: int = 0
) -> Any:
    """Fetch a required, typed field from a decoded map.

    ``bool`` is never accepted where ``int`` is asked for. ``max_len`` (when set)
    bounds ``len()`` of strings, bytes and lists.

    Raises:
        DecodeError: the field is missing, of the wrong type, or too long.
    """
    if name not in obj:
        raise DecodeError(f"missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise DecodeError(f"field {name!r} has the wrong type ({type(value).__name__})")
    if max_len and isinstance(value, str | bytes | list) and len(value) > max_len:
        raise RecordTooLarge(f"field {name!r} is longer than {max_len}")
    return value
