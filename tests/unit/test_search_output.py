"""`unigrec search` / `recommend --user` print each result's year and genres beside its title, read from the
project's items table, so a reader can see whether the results fit the query (issue 41, item 4)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unigrec.cli import _print_ranked
from unigrec.paths import Layout


class _Model:
    def knows_user(self, user: str) -> bool:
        return True

    def title(self, item_id: str) -> str:
        return {"50": "Star Wars", "7": "Twelve Monkeys", "9": "Untitled"}.get(item_id, "")


def _results() -> pd.DataFrame:
    return pd.DataFrame({"request": [0, 0, 0], "rank": [0, 1, 2], "item_id": ["50", "7", "9"],
                         "score": [-1.0, -2.5, -3.0]})


def test_results_show_year_and_genres_from_the_items_table(tmp_path: Path, capsys):
    layout = Layout(tmp_path)
    layout.items.parent.mkdir(parents=True)
    pd.DataFrame({
        "item_id": ["50", "7", "9"],
        "title": ["Star Wars", "Twelve Monkeys", "Untitled"],
        "text": ["Star Wars (1977). Genres: Action, Sci-Fi.", "Twelve Monkeys (1995). Genres: Drama, Sci-Fi.",
                 "Untitled."],
        "category": ["Action|Sci-Fi", "Drama|Sci-Fi", None],
    }).to_parquet(layout.items, index=False)
    _print_ranked(_Model(), _results(), "42", tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("title (year) [genres]")
    assert lines[1].endswith("Star Wars (1977) [Action, Sci-Fi]")
    assert lines[2].endswith("Twelve Monkeys (1995) [Drama, Sci-Fi]")
    assert lines[3].endswith("Untitled")  # neither year nor genres known: the title alone


def test_without_an_items_table_titles_are_printed_alone(tmp_path: Path, capsys):
    _print_ranked(_Model(), _results(), "42", tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("Star Wars") and len(lines) == 4
