"""Ed25519 keys on disk: one self-describing JSON file per key, optionally encrypted.

File format (UTF-8 JSON, at most :data:`MAX_KEY_FILE_SIZE` bytes)::

    {
      "kind": "datanet-key", "version": 1,
      "key_type": "node" | "org", "algorithm": "ed25519",
      "id": "12D3KooW…" (node) | "did:key:z6Mk…" (org),
      "name": "acme",                       # free text, informative only
      "cipher": "none" | "chacha20-poly1305",
      "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<base64>"},
      "nonce": "<base64>",                  # only when encrypted
      "secret": "<base64>"                  # the 32-byte seed, or its ciphertext + tag
    }

Invariants:
* A key file is written to a temporary file in the same directory with mode
  0600, fsynced, then renamed into place: a crash leaves either the old file, the
  new file or no file, never a torn one. An existing key is never replaced
  unless the caller passes ``overwrite=True``.
* Loading refuses a file that group or others may read or write (like ssh), and
  a file whose seed does not produce the public key named in ``id``.
* The public ``id`` is stored in clear so that a node can tell its peer id
  without the passphrase; with encryption it is bound to the ciphertext as
  associated data, so swapping it is detected.
* Every failure is a :class:`~identity.errors.KeystoreError` subclass (never an
  ``OSError``, ``KeyError`` or ``json`` error), and scrypt parameters read from a
  file are bounded so a hostile file cannot make loading eat memory or time.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from identity.errors import (
    CorruptKeyFile,
    DecodeError,
    InvalidInput,
    KeystoreError,
    WrongPassphrase,
)
from identity.keys import KeyPair, OrgId, PeerId

__all__ = [
    "DEFAULT_KDF",
    "KEY_FILE_KIND",
    "MAX_KEY_FILE_SIZE",
    "InsecureKeyFile",
    "KdfParams",
    "KeyFileExists",
    "KeyFileInfo",
    "KeyFileNotFound",
    "KeyType",
    "PassphraseRequired",
    "atomic_write",
    "decode_key_file",
    "encode_key_file",
    "load_key",
    "read_at_most",
    "read_key_info",
    "save_key",
]

KEY_FILE_KIND = "datanet-key"
KEY_FILE_VERSION = 1
MAX_KEY_FILE_SIZE = 16 * 1024
_CIPHER_NONE = "none"
_CIPHER_CHACHA = "chacha20-poly1305"
_AAD_DOMAIN = b"datanet-key/v1\x00"
_MAX_NAME_LEN = 128
# scrypt memory is 128 * n * r bytes; a file may ask for at most 256 MiB.
_MAX_SCRYPT_MEMORY = 256 * 1024 * 1024


class KeyFileNotFound(KeystoreError):
    """Raised when the key file does not exist."""

    code = "key_not_found"


class KeyFileExists(KeystoreError):
    """Raised when saving would replace an existing key and ``overwrite`` is false."""

    code = "key_exists"


class InsecureKeyFile(KeystoreError):
    """Raised when a key file may be read or written by group or others (``chmod 600`` it)."""

    code = "insecure_key_file"


class PassphraseRequired(KeystoreError):
    """Raised when a key file is encrypted and no passphrase was given."""

    code = "passphrase_required"


class KeyType(StrEnum):
    """What a key names: a node (peer id) or an organization (``did:key``)."""

    NODE = "node"
    ORG = "org"


@dataclass(frozen=True)
class KdfParams:
    """scrypt cost parameters. The default costs about 32 MiB and ~0.1 s per unlock."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        for name in ("n", "r", "p"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(f"scrypt {name} must be an integer")
        if self.n < 2 or self.n & (self.n - 1):
            raise InvalidInput("scrypt n must be a power of two")
        if not 1 <= self.r <= 32 or not 1 <= self.p <= 16:
            raise InvalidInput("scrypt r must be in 1..32 and p in 1..16")
        if 128 * self.n * self.r > _MAX_SCRYPT_MEMORY:
            raise InvalidInput("scrypt parameters would need more than 256 MiB")


DEFAULT_KDF = KdfParams()


@dataclass(frozen=True)
class KeyFileInfo:
    """What a key file says about itself without being unlocked."""

    key_type: KeyType
    public_key: bytes
    encrypted: bool
    name: str = ""

    @property
    def id_text(self) -> str:
        """The peer id (node) or ``did:key`` (org) the file names."""
        if self.key_type is KeyType.NODE:
            return str(PeerId(self.public_key))
        return str(OrgId(self.public_key))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(obj: dict[str, Any], name: str, *, length: int | None = None) -> bytes:
    value = obj.get(name)
    if not isinstance(value, str):
        raise CorruptKeyFile(f"key file field {name!r} is missing or not text")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CorruptKeyFile(f"key file field {name!r} is not base64") from None
    if length is not None and len(raw) != length:
        raise CorruptKeyFile(f"key file field {name!r} must be {length} bytes")
    return raw


def _normalize_passphrase(passphrase: str) -> bytes:
    # NFC so that the same passphrase typed on two systems gives the same bytes.
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def _derive(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    # cryptography is imported only where a key is encrypted or decrypted: the error
    # classes here are imported by every CLI command (through datanet.errors).
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # noqa: PLC0415

    return Scrypt(salt=salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(
        _normalize_passphrase(passphrase)
    )


def _aad(key_type: KeyType, id_text: str) -> bytes:
    return _AAD_DOMAIN + key_type.value.encode("ascii") + b"\x00" + id_text.encode("ascii")


def encode_key_file(
    key: KeyPair,
    *,
    key_type: KeyType,
    passphrase: str | None = None,
    name: str = "",
    kdf: KdfParams = DEFAULT_KDF,
) -> bytes:
    """Serialize ``key`` into key-file bytes, encrypting the seed if a passphrase is given.

    Raises:
        InvalidInput: an empty passphrase, or a name longer than 128 characters.
    """
    if passphrase is not None and passphrase == "":
        raise InvalidInput("an empty passphrase is not a passphrase; pass None for no encryption")
    if len(name) > _MAX_NAME_LEN:
        raise InvalidInput(f"a key name is at most {_MAX_NAME_LEN} characters")
    key_type = KeyType(key_type)
    info = KeyFileInfo(key_type, key.public_key, passphrase is not None, name)
    doc: dict[str, Any] = {
        "kind": KEY_FILE_KIND,
        "version": KEY_FILE_VERSION,
        "key_type": key_type.value,
        "algorithm": "ed25519",
        "id": info.id_text,
        "name": name,
    }
    if passphrase is None:
        doc["cipher"] = _CIPHER_NONE
        doc["secret"] = _b64(key.seed())
    else:
        salt = secrets.token_bytes(16)
        nonce = secrets.token_bytes(12)
        from cryptography.hazmat.primitives.ciphers.aead import (  # noqa: PLC0415
            ChaCha20Poly1305,
        )

        box = ChaCha20Poly1305(_derive(passphrase, salt, kdf))
        doc["cipher"] = _CIPHER_CHACHA
        doc["kdf"] = {"name": "scrypt", "n": kdf.n, "r": kdf.r, "p": kdf.p, "salt": _b64(salt)}
        doc["nonce"] = _b64(nonce)
        doc["secret"] = _b64(box.encrypt(nonce, key.seed(), _aad(key_type, info.id_text)))
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def _parse_doc(data: bytes) -> tuple[dict[str, Any], KeyFileInfo]:
    if len(data) > MAX_KEY_FILE_SIZE:
        raise CorruptKeyFile(f"a key file is at most {MAX_KEY_FILE_SIZE} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CorruptKeyFile("not a datanet key file (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("kind") != KEY_FILE_KIND:
        raise CorruptKeyFile("not a datanet key file (kind is not 'datanet-key')")
    if doc.get("version") != KEY_FILE_VERSION:
        raise CorruptKeyFile(f"unsupported key file version {str(doc.get('version'))[:20]!r}")
    if doc.get("algorithm") != "ed25519":
        raise CorruptKeyFile("unsupported key algorithm (expected ed25519)")
    try:
        key_type = KeyType(str(doc.get("key_type")))
    except ValueError:
        raise CorruptKeyFile("key file field 'key_type' must be 'node' or 'org'") from None
    id_text = doc.get("id")
    name = doc.get("name", "")
    if not isinstance(id_text, str) or not isinstance(name, str) or len(name) > _MAX_NAME_LEN:
        raise CorruptKeyFile("key file fields 'id' and 'name' must be short text")
    try:
        public_key = (
            PeerId.parse(id_text).public_key
            if key_type is KeyType.NODE
            else OrgId.parse(id_text).public_key
        )
    except DecodeError as exc:
        raise CorruptKeyFile(f"key file field 'id' is not a {key_type} id: {exc}") from None
    cipher = doc.get("cipher")
    if cipher not in (_CIPHER_NONE, _CIPHER_CHACHA):
        raise CorruptKeyFile(f"unsupported key file cipher {str(cipher)[:40]!r}")
    return doc, KeyFileInfo(key_type, public_key, cipher == _CIPHER_CHACHA, name)


def _parse_kdf(doc: dict[str, Any]) -> tuple[KdfParams, bytes]:
    kdf_doc = doc.get("kdf")
    if not isinstance(kdf_doc, dict) or kdf_doc.get("name") != "scrypt":
        raise CorruptKeyFile("key file field 'kdf' must describe scrypt")
    try:
        params = KdfParams(kdf_doc.get("n", 0), kdf_doc.get("r", 0), kdf_doc.get("p", 0))
    except InvalidInput as exc:
        raise CorruptKeyFile(f"key file scrypt parameters rejected: {exc}") from None
    salt = _unb64(kdf_doc, "salt")
    if not 8 <= len(salt) <= 64:
        raise CorruptKeyFile("key file scrypt salt must be 8..64 bytes")
    return params, salt


def decode_key_file(
    data: bytes, *, passphrase: str | None = None, key_type: KeyType | None = None
) -> KeyPair:
    """Parse key-file bytes and return the key, decrypting it if needed.

    Args:
        data: the file's bytes.
        passphrase: needed when the file is encrypted; ignored otherwise.
        key_type: if given, the file must hold this kind of key.

    Raises:
        CorruptKeyFile: the bytes are not a valid datanet key file, or the seed does
            not match the public id it names.
        PassphraseRequired: the file is encrypted and ``passphrase`` is None.
        WrongPassphrase: the passphrase does not open the file.
        KeystoreError: the file holds another kind of key than ``key_type``.
    """
    doc, info = _parse_doc(data)
    if key_type is not None and info.key_type is not KeyType(key_type):
        raise KeystoreError(
            f"the key file holds a {info.key_type} key where a {KeyType(key_type)} key is expected"
        )
    if info.encrypted:
        if passphrase is None or passphrase == "":
            raise PassphraseRequired("the key file is encrypted; a passphrase is required")
        kdf, salt = _parse_kdf(doc)
        nonce = _unb64(doc, "nonce", length=12)
        ciphertext = _unb64(doc, "secret", length=32 + 16)
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - see _derive
        from cryptography.hazmat.primitives.ciphers.aead import (  # noqa: PLC0415
            ChaCha20Poly1305,
        )

        try:
            seed = ChaCha20Poly1305(_derive(passphrase, salt, kdf)).decrypt(
                nonce, ciphertext, _aad(info.key_type, info.id_text)
            )
        except InvalidTag:
            raise WrongPassphrase(
                "wrong passphrase (or the key file was altered): cannot decrypt the key"
            ) from None
    else:
        seed = _unb64(doc, "secret", length=32)
    key = KeyPair.from_seed(seed)
    if key.public_key != info.public_key:
        raise CorruptKeyFile("the key file's secret does not match the id it names")
    return key


def _read(path: Path) -> bytes:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise KeystoreError(f"{path} is not a regular file")
        if st.st_size > MAX_KEY_FILE_SIZE:
            raise CorruptKeyFile(f"{path} is larger than a key file can be")
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileNotFound(f"no key file at {path}") from None
    except OSError as exc:
        raise KeystoreError(f"cannot read key file {path}: {exc.strerror or exc}") from None


def _check_permissions(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise KeystoreError(f"cannot stat key file {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise InsecureKeyFile(
            f"key file {path} has mode {mode:04o} and group or others may access it; "
            f"run: chmod 600 {path}"
        )


def read_key_info(path: Path) -> KeyFileInfo:
    """Read a key file's public facts (type, id, encrypted?) without unlocking it.

    Raises:
        KeyFileNotFound: no file at ``path``.
        CorruptKeyFile: the file is not a datanet key file.
        KeystoreError: the file cannot be read.
    """
    return _parse_doc(_read(Path(path)))[1]


def load_key(
    path: Path, *, passphrase: str | None = None, key_type: KeyType | None = None
) -> KeyPair:
    """Load a key from ``path`` (see :func:`decode_key_file` for the checks).

    Raises:
        KeyFileNotFound: no file at ``path``.
        InsecureKeyFile: group or others may access the file.
        CorruptKeyFile, PassphraseRequired, WrongPassphrase, KeystoreError: as in
            :func:`decode_key_file`, or the file cannot be read.
    """
    path = Path(path)
    data = _read(path)
    _check_permissions(path)
    return decode_key_file(data, passphrase=passphrase, key_type=key_type)


def save_key(
    path: Path,
    key: KeyPair,
    *,
    key_type: KeyType,
    passphrase: str | None = None,
    name: str = "",
    overwrite: bool = False,
    kdf: KdfParams = DEFAULT_KDF,
) -> None:
    """Write ``key`` to ``path`` with mode 0600, atomically.

    Raises:
        KeyFileExists: ``path`` exists and ``overwrite`` is false.
        InvalidInput: an empty passphrase or an over-long name.
        KeystoreError: the file cannot be written.
    """
    data = encode_key_file(key, key_type=key_type, passphrase=passphrase, name=name, kdf=kdf)
    try:
        atomic_write(Path(path), data, mode=0o600, overwrite=overwrite)
    except FileExistsError:
        raise KeyFileExists(f"a key already exists at {path}; refusing to overwrite it") from None
    except OSError as exc:
        raise KeystoreError(f"cannot write key file {path}: {exc.strerror or exc}") from None


def read_at_most(fh: BinaryIO, limit: int) -> bytes:
    """The file's bytes, up to ``limit + 1`` (so a caller can tell it is over ``limit``).

    ``fh.read(limit + 1)`` allocates the whole ``limit`` up front even for a small
    file, and freed buffers of that size fragment the C heap when a file is read
    often; this asks only for what the file holds (plus the byte that tells).
    """
    try:
        size = min(max(os.fstat(fh.fileno()).st_size, 0), limit)
    except (OSError, ValueError):  # no file descriptor (an in-memory file)
        size = limit
    data = fh.read(size + 1)
    if size < len(data) <= limit:  # it grew since fstat: read on as fh.read(limit + 1) would
        data += fh.read(limit + 1 - len(data))
    return data


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file in the same directory.

    Without ``overwrite`` the final step is a hard link, which fails if ``path``
    appeared in the meantime, so two writers can never both "create" the file.
    Missing parent directories are created with mode 0700.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        OSError: the file system refused.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not overwrite and path.exists():
        raise FileExistsError(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, mode)  # the umask may have removed bits we asked for
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except OSError as exc:
                if isinstance(exc, FileExistsError):
                    raise
                # File systems without hard links: fall back to check-then-rename.
                if path.exists():
                    raise FileExistsError(path) from None
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not support fsync on directories
    finally:
        os.close(fd)
