"""The root ``datanet`` click group, its context object, output and error helpers.

Command modules (``cli/org.py``, ``cli/descriptor.py``, …) import :data:`cli`
from here and register their commands on it; ``cli/main.py`` imports every
command module once. This module and the command modules import only click
and the standard library at import time: identity, datanet, rich and
cryptography are imported inside the commands, so ``datanet --help`` stays fast.

Invariants:
* :class:`~identity.errors.DatanetError` is caught in exactly one place, the
  root group's ``invoke``, and becomes a :class:`CliError` whose exit code comes
  from :data:`EXIT_CODES` (documented in ``docs/cli.md``). No traceback reaches
  the user for an error datanet raises on purpose.
* Passphrases come from ``--passphrase-file``, ``$DATANET_PASSPHRASE`` or a
  hidden prompt when stdin is a terminal; never from argv.
* With ``--json`` a command prints exactly one JSON document on stdout, and
  errors are printed as ``{"error": {"code", "message"}}`` on stderr.
"""

# Imports of identity/datanet/rich inside functions are deliberate (fast start-up).

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from datanet.node.home import Home
    from identity.keys import KeyPair
    from identity.keystore import KdfParams

__all__ = [
    "EXIT_CODES",
    "EXIT_ERROR",
    "EXIT_INVALID",
    "EXIT_KEYSTORE",
    "EXIT_NETWORK",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_VERIFY",
    "PASSPHRASE_ENV",
    "CliContext",
    "CliError",
    "DatanetGroup",
    "InvalidInputExit",
    "KeystoreExit",
    "NetworkExit",
    "NotFoundExit",
    "VerificationExit",
    "cli",
    "emit",
    "exit_class_for",
    "format_time",
    "json_option",
    "new_passphrase",
    "pass_app",
    "passphrase_file_option",
    "print_table",
    "read_input_file",
    "stored_on",
    "unlock",
    "write_output_file",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_VERIFY = 4
EXIT_NOT_FOUND = 5
EXIT_KEYSTORE = 6
EXIT_NETWORK = 7

#: Exit codes and what they mean (docs/cli.md shows the same table).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_ERROR: "any other error (file system, storage, unexpected state)",
    EXIT_USAGE: "usage error: unknown command or option, missing argument",
    EXIT_INVALID: "invalid input: malformed file, identifier, name or value",
    EXIT_VERIFY: "verification failed: signature, certificate, trust, scope, expiry, staleness",
    EXIT_NOT_FOUND: "not found: not initialized, no such org, no usable certificate",
    EXIT_KEYSTORE: "keystore: wrong or missing passphrase, damaged or insecure key file",
    EXIT_NETWORK: "network: daemon or peer unreachable, timeout, remote protocol error",
}

PASSPHRASE_ENV = "DATANET_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
MAX_INPUT_FILE = 1024 * 1024

F = TypeVar("F", bound=Callable[..., Any])


def _wall_clock() -> int:
    return int(time.time())


@dataclass
class CliContext:
    """The one object on ``ctx.obj``: global options and lazily built services.

    Tests may pass their own instance (``CliRunner().invoke(cli, args, obj=...)``)
    to inject a clock or cheap scrypt parameters.
    """

    data_dir: Path | None = None
    json: bool = False
    clock: Callable[[], int] = _wall_clock
    kdf: KdfParams | None = None
    _home: Home | None = field(default=None, repr=False)

    def home(self) -> Home:
        """The data directory chosen by ``--data-dir`` / ``$DATANET_HOME`` / the default."""
        if self._home is None:
            from datanet.node.home import Home, resolve_data_dir

            path = resolve_data_dir(self.data_dir)
            self._home = Home(path) if self.kdf is None else Home(path, kdf=self.kdf)
        return self._home

    def now(self) -> int:
        """The current time in Unix seconds."""
        return self.clock()


pass_app = click.make_pass_decorator(CliContext, ensure=True)


class CliError(click.ClickException):
    """A user-facing error; each subclass has its own exit code (see :data:`EXIT_CODES`).

    Args:
        message: what went wrong, written for the user.
        code: the machine-readable code (the DatanetError's ``code``).
        as_json: print the error as one JSON document.
    """

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, code: str = "error", as_json: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.as_json = as_json

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the error on stderr: ``Error: …`` or one JSON document."""
        if self.as_json:
            doc = {"error": {"code": self.code, "message": self.format_message()}}
            click.echo(json.dumps(doc), file=file, err=file is None)
        else:
            click.echo(f"Error: {self.format_message()}", file=file, err=file is None)


class InvalidInputExit(CliError):
    """Exit code 3: the input is malformed."""

    exit_code = EXIT_INVALID


class VerificationExit(CliError):
    """Exit code 4: a signature, certificate or policy check failed."""

    exit_code = EXIT_VERIFY


class NotFoundExit(CliError):
    """Exit code 5: something needed does not exist."""

    exit_code = EXIT_NOT_FOUND


class KeystoreExit(CliError):
    """Exit code 6: a key cannot be unlocked or read."""

    exit_code = EXIT_KEYSTORE


class NetworkExit(CliError):
    """Exit code 7: the daemon or a peer could not be reached."""

    exit_code = EXIT_NETWORK


def exit_class_for(exc: BaseException) -> type[CliError]:
    """The :class:`CliError` subclass for a datanet error, by what the user can do."""
    from datanet.errors import (
        InvalidInput,
        KeystoreError,
        NetworkError,
        NotFound,
        VerificationError,
    )

    table: Sequence[tuple[type[BaseException], type[CliError]]] = (
        (InvalidInput, InvalidInputExit),
        (VerificationError, VerificationExit),
        (NotFound, NotFoundExit),
        (KeystoreError, KeystoreExit),
        (NetworkError, NetworkExit),
    )
    for kind, exit_class in table:
        if isinstance(exc, kind):
            return exit_class
    return CliError


class DatanetGroup(click.Group):
    """The root group: turns datanet errors into :class:`CliError` at the edge."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; translate DatanetError and OSError into exit codes."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, BrokenPipeError):
            raise  # click ends quietly on a closed pipe (datanet … | head)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise CliError(
                f"{exc.strerror or exc}{where}", code="os_error", as_json=_json_mode(ctx)
            ) from exc
        except Exception as exc:
            from identity.errors import DatanetError

            if not isinstance(exc, DatanetError):
                raise
            raise exit_class_for(exc)(
                str(exc) or type(exc).__name__, code=exc.code, as_json=_json_mode(ctx)
            ) from exc


def _json_mode(ctx: click.Context) -> bool:
    obj = ctx.find_object(CliContext)
    return bool(obj and obj.json)


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("datanet")
    except PackageNotFoundError:
        text = "unknown (not installed)"
    click.echo(f"datanet {text}")
    ctx.exit()


@click.group("datanet", cls=DatanetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DATANET_HOME",
    metavar="DIR",
    help="The node's data directory [env DATANET_HOME; default: the platform's user data dir].",
)
@click.option(
    "--json", "json_output", is_flag=True, help="Print one JSON document instead of text."
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and exit.",
)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, json_output: bool) -> None:
    """datanet: a decentralized data network node and its tools.

    Exit codes: 0 ok, 1 error, 2 usage, 3 invalid input, 4 verification failed,
    5 not found, 6 keystore/passphrase, 7 network (see docs/cli.md).
    """
    app = ctx.ensure_object(CliContext)
    if data_dir is not None:
        app.data_dir = data_dir
    app.json = app.json or json_output


# -- shared options -------------------------------------------------------------


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliContext).json = True


def json_option(func: F) -> F:
    """``--json`` on a command (the same as the global ``datanet --json``)."""
    return click.option(
        "--json",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print one JSON document instead of text.",
    )(func)


def passphrase_file_option(func: F) -> F:
    """``--passphrase-file FILE``: read a key's passphrase from the file's first line."""
    return click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        default=None,
        help=f"Read the key passphrase from FILE [else env {PASSPHRASE_ENV}, else a prompt on a "
        "terminal].",
    )(func)


# -- passphrases ----------------------------------------------------------------


def _given_passphrase(passphrase_file: Path | None) -> str | None:
    if passphrase_file is not None:
        text = read_input_file(passphrase_file, max_size=4096).decode("utf-8", "replace")
        line = text.splitlines()[0] if text else ""
        return line or None
    return os.environ.get(PASSPHRASE_ENV) or None


def _interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def new_passphrase(passphrase_file: Path | None, *, what: str, no_passphrase: bool) -> str | None:
    """The passphrase for a new key: given, prompted (twice) on a terminal, or none."""
    if no_passphrase:
        return None
    given = _given_passphrase(passphrase_file)
    if given is not None:
        return given
    if _interactive():
        text: str = click.prompt(
            f"Passphrase for the {what} (empty for none)",
            default="",
            show_default=False,
            hide_input=True,
            confirmation_prompt=True,
        )
        return text or None
    return None


def unlock(
    load: Callable[[str | None], KeyPair], passphrase_file: Path | None, *, what: str
) -> KeyPair:
    """Call ``load(passphrase)``; prompt once on a terminal if the key needs a passphrase.

    Raises:
        PassphraseRequired: encrypted, no passphrase given and no terminal to ask on.
        WrongPassphrase: the passphrase does not open the key.
    """
    from identity.keystore import PassphraseRequired

    given = _given_passphrase(passphrase_file)
    try:
        return load(given)
    except PassphraseRequired:
        if given is not None or not _interactive():
            raise PassphraseRequired(
                f"the {what} is encrypted: give --passphrase-file FILE or set {PASSPHRASE_ENV}"
            ) from None
    text: str = click.prompt(f"Passphrase for the {what}", hide_input=True)
    return load(text or None)


# -- files ----------------------------------------------------------------------


def read_input_file(path: Path, *, max_size: int = MAX_INPUT_FILE) -> bytes:
    """Read a user-named file with a size bound.

    Raises:
        NotFound: no such file.
        InvalidInput: larger than ``max_size``.
        OSError: unreadable (reported with exit code 1).
    """
    from datanet.errors import InvalidInput, NotFound

    try:
        with Path(path).open("rb") as f:
            data = f.read(max_size + 1)
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}") from None
    if len(data) > max_size:
        raise InvalidInput(f"{path} is larger than {max_size} bytes")
    return data


def write_output_file(path: Path, data: bytes, *, force: bool = False) -> None:
    """Write a user-named output file atomically; never replace one unless ``force``.

    Raises:
        InvalidInput: the file exists and ``force`` is false.
    """
    from datanet.errors import InvalidInput
    from identity.keystore import atomic_write

    try:
        atomic_write(Path(path), data, mode=0o644, overwrite=force)
    except FileExistsError:
        raise InvalidInput(f"{path} exists; refusing to overwrite it (use --force)") from None


# -- output ---------------------------------------------------------------------


def stored_on(acked: int, target: int, pending: int) -> str:
    """``4 peers``, or ``4 of 20 peers (16 more writes continue in the background)``."""
    text = f"{acked}"
    if target > acked:
        text += f" of {target}"
    text += f" peer{'s' if (target if target > acked else acked) != 1 else ''}"
    if pending:
        text += f" ({pending} more write{'s' if pending != 1 else ''} continue in the background)"
    return text


def emit(app: CliContext, doc: Any, human: Callable[[], None]) -> None:
    """Print ``doc`` as JSON in ``--json`` mode, else call ``human()``."""
    if app.json:
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        human()


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str = ""
) -> None:
    """Print a rich table through click (so CliRunner captures it)."""
    row_list = [list(r) for r in rows]
    if not row_list and empty:
        click.echo(empty)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title or None, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in row_list:
        table.add_row(*(Text(cell) for cell in row))
    buffer = io.StringIO()
    width = max(shutil.get_terminal_size((120, 24)).columns, 80)
    console = Console(
        file=buffer, width=width, color_system=None, highlight=False, emoji=False, markup=False
    )
    console.print(table)
    click.echo(buffer.getvalue().rstrip("\n"))


def format_time(ts: int) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SSZ`` (UTC)."""
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(ts)
