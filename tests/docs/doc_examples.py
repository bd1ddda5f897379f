"""The shell examples of README.md and docs/*.md, as test cases (pure: text in, cases out).

A case is one command line of a fenced block tagged ``sh``, ``bash``, ``shell``
or ``console``: comments stripped, ``\\`` continuations joined, a ``$ `` prompt
removed (in a ``console`` block, only prompted lines are commands). What a doc
says about its examples, it says in the doc itself, visibly:

* ``<!-- doc-examples: skip (REASON) -->`` right before a block: none of its
  lines runs (a reason is required);
* ``<!-- doc-examples: home=NAME -->`` right before a block: its lines run with
  ``NAME`` as the data directory: a devnet node (``node0`` … ``node5``) or any
  other name, an empty scratch home that blocks naming it share;
* ``# doc-examples: skip (REASON)`` at the end of a line: that line does not run;
* ``# exits N`` in a line's comment: the command is expected to exit with ``N``;
* ``until Ctrl-C`` in a line's comment: the command runs until interrupted; it
  must still be running after a few seconds, and exit cleanly on SIGINT.

Invariants:
* Every command line of every tagged block becomes exactly one case (skipped
  ones included, with their reason), in document order.
* A case's ``prelude`` holds the variable assignments (``X=…``, ``export X=…``)
  of the lines before it in the same block, so shell state carries over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SHELL_TAGS", "Case", "DocExampleError", "cases_in", "doc_files"]

SHELL_TAGS = frozenset({"sh", "bash", "shell", "console"})
_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
_DIRECTIVE = re.compile(r"^\s*<!--\s*doc-examples:\s*(.*?)\s*-->\s*$")
_SKIP = re.compile(r"^skip\s*\((.+)\)$")
_LINE_SKIP = re.compile(r"#\s*doc-examples:\s*skip\s*\((.+)\)")
_EXITS = re.compile(r"#.*\bexits (\d+)\b")
_ASSIGN = re.compile(r"^(export\s+)?[A-Za-z_][A-Za-z0-9_]*=")


class DocExampleError(ValueError):
    """A doc's example or directive cannot be understood (names file and line)."""


@dataclass(frozen=True)
class Case:
    """One command line of a doc."""

    file: str
    line: int
    command: str
    home: str | None
    expected_exit: int
    skip: str | None
    prelude: tuple[str, ...]
    until_interrupted: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def doc_files(root: Path) -> list[Path]:
    """README.md and every docs/*.md, in a stable order."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _strip_comment(line: str) -> str:
    """``line`` without its ``#`` comment (outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def _directives(text: str, where: str) -> tuple[str | None, str | None]:
    """(skip reason, home) of a block directive's body."""
    if m := _SKIP.match(text):
        return m.group(1).strip(), None
    if text.startswith("home="):
        home = text[len("home=") :].strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", home):
            raise DocExampleError(f"{where}: bad home name {home!r}")
        return None, home
    raise DocExampleError(f"{where}: unknown doc-examples directive {text!r}")


def cases_in(path: Path, root: Path) -> list[Case]:
    """The cases of one Markdown file.

    Raises:
        DocExampleError: an unknown directive, a skip without reason, an unclosed block.
    """
    name = str(path.relative_to(root))
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Case] = []
    i = 0
    last_directive: tuple[int, str] | None = None
    while i < len(lines):
        text = lines[i]
        if m := _DIRECTIVE.match(text):
            last_directive = (i, m.group(1))
            i += 1
            continue
        fence = _FENCE.match(text)
        if not fence:
            if text.strip():
                last_directive = None
            i += 1
            continue
        marker, tag = fence.group(2), fence.group(3).lower()
        start = i
        i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and not lines[i].strip().startswith(marker):
            body.append((i + 1, lines[i]))
            i += 1
        if i >= len(lines):
            raise DocExampleError(f"{name}:{start + 1}: unclosed code block")
        i += 1
        directive, last_directive = last_directive, None
        if tag not in SHELL_TAGS:
            continue
        skip, home = (None, None)
        if directive is not None:
            skip, home = _directives(directive[1], f"{name}:{directive[0] + 1}")
        out.extend(_block_cases(name, body, tag, skip, home))
    return out


def _block_cases(
    name: str, body: list[tuple[int, str]], tag: str, skip: str | None, home: str | None
) -> list[Case]:
    out: list[Case] = []
    prelude: list[str] = []
    j = 0
    while j < len(body):
        number, raw = body[j]
        j += 1
        if tag == "console":
            if not raw.lstrip().startswith("$ "):
                continue  # output
            raw = raw.lstrip()[2:]
        elif raw.lstrip().startswith("$ "):
            raw = raw.lstrip()[2:]
        parts = [raw]
        while _strip_comment(parts[-1]).endswith("\\") and j < len(body):
            parts.append(body[j][1])
            j += 1
        comments = " ".join(parts)
        command = " ".join(_strip_comment(p).removesuffix("\\").strip() for p in parts).strip()
        if not command:
            continue
        line_skip = _LINE_SKIP.search(comments)
        exits = _EXITS.search(comments)
        out.append(
            Case(
                file=name,
                line=number,
                command=command,
                home=home,
                expected_exit=int(exits.group(1)) if exits else 0,
                skip=skip or (line_skip.group(1).strip() if line_skip else None),
                prelude=tuple(prelude),
                until_interrupted="until Ctrl-C" in comments,
            )
        )
        if _ASSIGN.match(command):
            prelude.append(command)
    return out
