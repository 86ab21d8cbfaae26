"""The shared BENCHMARKS.md block writer: replaces only its own block, appends a missing one."""

from __future__ import annotations

import pytest

from benchmarks.markdown_block import NEW_FILE_HEADER, read_block, replace_block, write_block


def test_replace_block_rewrites_only_the_named_block():
    text = "# t\n\n<!-- a:start -->\nold a\n<!-- a:end -->\n\n<!-- b:start -->\nold b\n<!-- b:end -->\ntail\n"
    out = replace_block(text, "a", "new a\nline 2\n")
    assert out == "# t\n\n<!-- a:start -->\nnew a\nline 2\n<!-- a:end -->\n\n<!-- b:start -->\nold b\n<!-- b:end -->\ntail\n"


def test_a_missing_block_is_appended_and_a_missing_file_gets_the_header(tmp_path):
    assert replace_block("# t\n\n", "c", "body") == "# t\n\n<!-- c:start -->\nbody\n<!-- c:end -->\n"
    path = tmp_path / "BENCHMARKS.md"
    write_block(path, "c", "body")
    write_block(path, "c", "body 2")
    assert path.read_text() == NEW_FILE_HEADER.rstrip("\n") + "\n\n<!-- c:start -->\nbody 2\n<!-- c:end -->\n"


def test_read_block_returns_the_named_block_with_its_markers_and_names_a_missing_one():
    text = "<!-- a:start -->\nA\n<!-- a:end -->\n<!-- b:start -->\nB\n<!-- b:end -->\n"
    assert read_block(text, "b") == "<!-- b:start -->\nB\n<!-- b:end -->"
    assert read_block(replace_block(text, "a", "new"), "a") == "<!-- a:start -->\nnew\n<!-- a:end -->"
    with pytest.raises(KeyError, match="'c'"):
        read_block(text, "c")
