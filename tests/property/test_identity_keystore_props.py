"""Property tests: damaged key files raise only KeystoreError subclasses."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from identity.errors import KeystoreError
from identity.keys import KeyPair
from identity.keystore import KdfParams, KeyType, decode_key_file, encode_key_file

KEY = KeyPair.from_seed(bytes([5]) * 32)
FAST = KdfParams(n=2**4, r=1, p=1)
PLAIN = encode_key_file(KEY, key_type=KeyType.NODE)
ENCRYPTED = encode_key_file(KEY, key_type=KeyType.ORG, passphrase="pw", kdf=FAST)

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)


@SETTINGS
@given(st.sampled_from([PLAIN, ENCRYPTED]), st.integers(min_value=0), st.integers(1, 255))
def test_flipped_byte_is_keystore_error_or_same_key(data: bytes, pos: int, mask: int) -> None:
    b = bytearray(data)
    b[pos % len(b)] ^= mask
    try:
        key = decode_key_file(bytes(b), passphrase="pw")
    except KeystoreError:
        return
    # JSON whitespace or the informative name may change harmlessly; the key may not.
    assert key.seed() == KEY.seed()


@SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes_are_keystore_errors(data: bytes) -> None:
    with contextlib.suppress(KeystoreError):
        decode_key_file(data, passphrase="pw")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(
    st.sampled_from([PLAIN, ENCRYPTED]),
    st.sampled_from(
        [
            "kind",
            "version",
            "key_type",
            "algorithm",
            "id",
            "name",
            "cipher",
            "kdf",
            "nonce",
            "secret",
        ]
    ),
    _json,
)
def test_any_field_value_is_keystore_error_or_same_key(
    data: bytes, field: str, value: object
) -> None:
    doc = json.loads(data)
    doc[field] = value
    try:
        key = decode_key_file(json.dumps(doc).encode(), passphrase="pw")
    except KeystoreError:
        return
    assert key.seed() == KEY.seed()
