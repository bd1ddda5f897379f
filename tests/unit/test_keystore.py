"""identity.keystore: key files on disk (0600, atomic, optional passphrase encryption)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from identity.errors import CorruptKeyFile, InvalidInput, KeystoreError, WrongPassphrase
from identity.keys import KeyPair
from identity.keystore import (
    InsecureKeyFile,
    KdfParams,
    KeyFileExists,
    KeyFileNotFound,
    KeyType,
    PassphraseRequired,
    atomic_write,
    decode_key_file,
    encode_key_file,
    load_key,
    read_key_info,
    save_key,
)

FAST = KdfParams(n=2**8, r=8, p=1)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_plain_round_trip_and_mode_0600(tmp_path: Path, node_key: KeyPair) -> None:
    path = tmp_path / "sub" / "node.key"
    save_key(path, node_key, key_type=KeyType.NODE)
    assert _mode(path) == 0o600
    loaded = load_key(path, key_type=KeyType.NODE)
    assert loaded.seed() == node_key.seed()
    info = read_key_info(path)
    assert (info.key_type, info.public_key, info.encrypted) == (
        KeyType.NODE,
        node_key.public_key,
        False,
    )
    assert info.id_text == str(node_key.peer_id)
    assert [p.name for p in path.parent.iterdir()] == ["node.key"]  # no temp files left


def test_mode_0600_despite_permissive_umask(tmp_path: Path, node_key: KeyPair) -> None:
    old = os.umask(0)
    try:
        save_key(tmp_path / "k", node_key, key_type=KeyType.NODE)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "k") == 0o600


def test_encrypted_round_trip(tmp_path: Path, org_key: KeyPair) -> None:
    path = tmp_path / "org.key"
    save_key(path, org_key, key_type=KeyType.ORG, passphrase="correct horse", name="acme", kdf=FAST)
    doc = json.loads(path.read_text())
    assert doc["kind"] == "datanet-key"
    assert doc["cipher"] == "chacha20-poly1305"
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["id"] == str(org_key.org_id)
    assert org_key.seed().hex() not in path.read_text()
    info = read_key_info(path)
    assert info.encrypted
    assert info.name == "acme"
    assert load_key(path, passphrase="correct horse").seed() == org_key.seed()


def test_passphrase_unicode_normalisation(tmp_path: Path, node_key: KeyPair) -> None:
    path = tmp_path / "k"
    save_key(path, node_key, key_type=KeyType.NODE, passphrase="caf\u00e9", kdf=FAST)
    # The same passphrase typed as e + combining accent opens the file.
    assert load_key(path, passphrase="cafe\u0301").seed() == node_key.seed()


def test_wrong_passphrase(tmp_path: Path, node_key: KeyPair) -> None:
    path = tmp_path / "k"
    save_key(path, node_key, key_type=KeyType.NODE, passphrase="right", kdf=FAST)
    with pytest.raises(WrongPassphrase):
        load_key(path, passphrase="wrong")


def test_passphrase_required(tmp_path: Path, node_key: KeyPair) -> None:
    path = tmp_path / "k"
    save_key(path, node_key, key_type=KeyType.NODE, passphrase="right", kdf=FAST)
    with pytest.raises(PassphraseRequired):
        load_key(path)
    with pytest.raises(PassphraseRequired):
        load_key(path, passphrase="")


def test_empty_passphrase_refused_on_save(tmp_path: Path, node_key: KeyPair) -> None:
    with pytest.raises(InvalidInput):
        save_key(tmp_path / "k", node_key, key_type=KeyType.NODE, passphrase="")
    assert not (tmp_path / "k").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileNotFound):
        load_key(tmp_path / "nope")
    with pytest.raises(KeyFileNotFound):
        read_key_info(tmp_path / "nope")


def test_refuses_to_overwrite(tmp_path: Path, node_key: KeyPair, other_node_key: KeyPair) -> None:
    path = tmp_path / "k"
    save_key(path, node_key, key_type=KeyType.NODE)
    before = path.read_bytes()
    with pytest.raises(KeyFileExists):
        save_key(path, other_node_key, key_type=KeyType.NODE)
    assert path.read_bytes() == before
    save_key(path, other_node_key, key_type=KeyType.NODE, overwrite=True)
    assert load_key(path).public_key == other_node_key.public_key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_group_or_other_access_refused(tmp_path: Path, node_key: KeyPair, mode: int) -> None:
    path = tmp_path / "k"
    save_key(path, node_key, key_type=KeyType.NODE)
    path.chmod(mode)
    with pytest.raises(InsecureKeyFile, match="chmod 600"):
        load_key(path)
    path.chmod(0o400)
    assert load_key(path).public_key == node_key.public_key


def test_wrong_key_type(tmp_path: Path, node_key: KeyPair) -> None:
    path = tmp_path / "k"
    save_key(path, node_key, key_type=KeyType.NODE)
    with pytest.raises(KeystoreError, match="holds a node key where a org key"):
        load_key(path, key_type=KeyType.ORG)


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError):
        load_key(tmp_path)


def _doc(key: KeyPair, **kw: object) -> dict[str, object]:
    return json.loads(encode_key_file(key, key_type=KeyType.NODE, **kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "ssh-key"},
        {"version": 2},
        {"algorithm": "rsa"},
        {"key_type": "admin"},
        {"id": "12D3KooWnope"},
        {"id": 5},
        {"cipher": "rot13"},
        {"secret": "!!!not base64!!!"},
        {"secret": "AAAA"},  # 3 bytes, not 32
        {"name": "x" * 200},
    ],
)
def test_corrupt_plain_files(node_key: KeyPair, change: dict[str, object]) -> None:
    doc = _doc(node_key)
    doc.update(change)
    with pytest.raises(CorruptKeyFile):
        decode_key_file(json.dumps(doc).encode())


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe", b"[]", b"null", b"{", b"{}" + b" " * 20000, b"[" * 100000, b"[" * 10000],
)
def test_garbage_is_corrupt_key_file(data: bytes) -> None:
    with pytest.raises(CorruptKeyFile):
        decode_key_file(data)


def test_seed_not_matching_id_is_corrupt(node_key: KeyPair, other_node_key: KeyPair) -> None:
    doc = _doc(node_key)
    doc["id"] = str(other_node_key.peer_id)
    with pytest.raises(CorruptKeyFile, match="does not match"):
        decode_key_file(json.dumps(doc).encode())


def test_swapped_id_of_encrypted_file_detected(node_key: KeyPair, other_node_key: KeyPair) -> None:
    doc = _doc(node_key, passphrase="pw", kdf=FAST)
    doc["id"] = str(other_node_key.peer_id)
    # The id is associated data of the AEAD: changing it makes decryption fail.
    with pytest.raises(WrongPassphrase):
        decode_key_file(json.dumps(doc).encode(), passphrase="pw")


@pytest.mark.parametrize(
    "kdf",
    [
        {"name": "pbkdf2", "n": 256, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
        {"name": "scrypt", "n": 2**30, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
        {"name": "scrypt", "n": 1000, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
        {"name": "scrypt", "n": 256, "r": 99, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
        {"name": "scrypt", "n": "256", "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
        {"name": "scrypt", "n": 256, "r": 8, "p": 1, "salt": "AA=="},
        {"name": "scrypt", "n": 256, "r": 8, "p": 1},
        "scrypt",
    ],
)
def test_hostile_kdf_parameters_refused(node_key: KeyPair, kdf: object) -> None:
    doc = _doc(node_key, passphrase="pw", kdf=FAST)
    doc["kdf"] = kdf
    with pytest.raises(CorruptKeyFile):
        decode_key_file(json.dumps(doc).encode(), passphrase="pw")


def test_tampered_ciphertext_detected(node_key: KeyPair) -> None:
    doc = _doc(node_key, passphrase="pw", kdf=FAST)
    raw = bytearray(base64.b64decode(str(doc["secret"])))
    raw[0] ^= 1
    doc["secret"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(WrongPassphrase):
        decode_key_file(json.dumps(doc).encode(), passphrase="pw")


def test_oversized_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b" " * 20000)
    path.chmod(0o600)
    with pytest.raises(CorruptKeyFile):
        load_key(path)


def test_kdf_params_validation() -> None:
    with pytest.raises(InvalidInput):
        KdfParams(n=3)
    with pytest.raises(InvalidInput):
        KdfParams(n=2**20, r=8)  # 1 GiB
    with pytest.raises(InvalidInput):
        KdfParams(p=0)


def test_atomic_write_no_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "f"
    atomic_write(path, b"one", mode=0o644, overwrite=False)
    with pytest.raises(FileExistsError):
        atomic_write(path, b"two", overwrite=False)
    assert path.read_bytes() == b"one"
    atomic_write(path, b"three", mode=0o644)
    assert path.read_bytes() == b"three"
    assert _mode(path) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
