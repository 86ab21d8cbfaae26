"""Progress bars show in a terminal and stay out of redirected logs."""

from __future__ import annotations

import io

import pytest

from unigrec.logs import bar_on_stderr, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _written(stream: io.StringIO, show: bool = True) -> str:
    for _ in progress(range(3), show=show, file=stream):
        pass
    return stream.getvalue()


@pytest.fixture(autouse=True)
def _no_tqdm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_a_shown_bar_draws_in_a_terminal():
    assert "3/3" in _written(_Terminal())


def test_a_shown_bar_stays_out_of_a_redirected_log():
    assert _written(io.StringIO()) == ""


def test_a_hidden_bar_stays_out_of_a_terminal_too():
    assert _written(_Terminal(), show=False) == ""


# as tqdm reads it for the bars it draws on its own: bool() of the string, so "0" also switches them off
@pytest.mark.parametrize(("value", "drawn"), [("1", False), ("true", False), ("0", False), ("", True)])
def test_tqdm_disable_switches_bars_off_in_a_terminal(monkeypatch: pytest.MonkeyPatch, value: str, drawn: bool):
    monkeypatch.setenv("TQDM_DISABLE", value)
    assert ("3/3" in _written(_Terminal())) is drawn


def test_on_off_bars_follow_the_same_rule(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert bar_on_stderr() and not bar_on_stderr(show=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not bar_on_stderr()
