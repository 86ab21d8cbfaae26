"""One writer for the marked blocks of BENCHMARKS.md, shared by every benchmark script.

Each script owns one block between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` and rewrites only
that block, reading the file fresh just before writing: several scripts may run at the same time and
each must leave the others' blocks alone.
"""

from __future__ import annotations

from pathlib import Path

NEW_FILE_HEADER = (
    "# unigrec benchmarks\n\nEvery figure here comes from a run that was actually done, with the command "
    "that produced it and the machine it ran on.\n"
)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def read_block(text: str, name: str) -> str:
    """Block ``name`` of ``text``, markers included (a KeyError names a block the text lacks): what a test
    compares when it checks that a block re-renders from its stored results as the file holds it."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise KeyError(f"no block {name!r}")
    return start + text.split(start, 1)[1].split(end, 1)[0] + end


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with block ``name`` holding ``body`` (without markers); appended when the block is absent."""
    start, end = markers(name)
    body = body.rstrip("\n")
    wrapped = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + wrapped + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + wrapped + "\n"


def write_block(path: Path, name: str, body: str) -> None:
    """Rewrite block ``name`` of the Markdown file at ``path`` (created with a header when missing)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else NEW_FILE_HEADER
    path.write_text(replace_block(text, name, body), encoding="utf-8")
