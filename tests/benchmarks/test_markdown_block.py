"""The shared BENCHMARKS.md block writer: replaces only its own block, appends a missing one."""

from __future__ import annotations

from benchmarks.markdown_block import NEW_FILE_HEADER, replace_block, write_block


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
