"""Progress bars show in a terminal and stay out of redirected logs."""

from __future__ import annotations

import io

from tqdm.auto import tqdm

from unigrec.logs import bar_disabled


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _written(stream: io.StringIO, show_progress: bool) -> str:
    for _ in tqdm(range(3), file=stream, disable=bar_disabled(show_progress)):
        pass
    return stream.getvalue()


def test_a_shown_bar_draws_in_a_terminal():
    assert "3/3" in _written(_Terminal(), show_progress=True)


def test_a_shown_bar_stays_out_of_a_redirected_log():
    assert _written(io.StringIO(), show_progress=True) == ""


def test_a_hidden_bar_stays_out_of_a_terminal_too():
    assert _written(_Terminal(), show_progress=False) == ""
