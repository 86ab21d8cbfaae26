"""Fixture factory for the data-contract tests and .ci/contracts.sh: a valid trio of canonical tables,
and one named breakage per rule the contracts must catch.

Run as a script to write the fixtures to disk (used by the CI step):
    python tests/contract_fixtures.py OUT_DIR        # OUT_DIR/valid/, OUT_DIR/<case>/, OUT_DIR/cases.tsv
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

Tables = dict[str, pd.DataFrame]
BASE_TIME = 1_600_000_000  # 2020-09-13: well inside the contracts' time window
NOT_UTF8 = b"caf\xe9 \xff"  # Latin-1 bytes: what a mis-declared CSV export leaves behind


def valid_tables() -> Tables:
    """Four items, ten interactions (60% positive), four searches: every contract rule passes."""
    items = pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3", "i4"],
            "title": ["Toy Story", "GoldenEye", "Heat", "Untitled"],
            "text": [
                "Toy Story. Animation Children's Comedy",
                "GoldenEye. Action Adventure Thriller",
                "Heat. Action Crime Thriller",
                "Untitled. Drama",
            ],
            "category": ["Animation|Comedy", "Action|Thriller", None, "Drama"],
        }
    ).astype("string")
    ratings = [5.0, 4.0, 2.0, 5.0, 3.0, 4.0, 1.0, 4.5, np.nan, 4.0]
    interactions = pd.DataFrame(
        {
            "user_id": pd.array(["u1"] * 5 + ["u2"] * 5, dtype="string"),
            "item_id": pd.array(["i1", "i2", "i3", "i4", "i1", "i2", "i3", "i4", "i1", "i2"], dtype="string"),
            "timestamp": np.arange(10, dtype=np.int64) * 3600 + BASE_TIME,
            "rating": np.array(ratings, dtype=np.float64),
            "label": np.array([1, 1, 0, 1, 0, 1, 0, 1, 0, 1], dtype=np.int8),
        }
    )
    searches = pd.DataFrame(
        {
            "user_id": pd.array(["u1", "u1", "u2", "u2"], dtype="string"),
            "query": pd.array(["animation comedy", "action thriller", "crime", "drama"], dtype="string"),
            "item_id": pd.array(["i1", "i2", "i3", "i4"], dtype="string"),
            "timestamp": np.arange(4, dtype=np.int64) * 7200 + BASE_TIME,
        }
    )
    return {"items": items, "interactions": interactions, "searches": searches}


def write_tables(tables: Tables, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@dataclasses.dataclass(frozen=True)
class BrokenCase:
    """One kind of broken input and the failure it must produce."""

    table: str
    column: str | None
    rule: str  # the rule name the report must show (a prefix of it for parametrised pandera checks)
    mutate: Callable[[Tables], None] | None = None  # edits the valid frames in place
    damage: Callable[[Path], None] | None = None  # edits the written files

    def write(self, folder: Path) -> Path:
        tables = valid_tables()
        if self.mutate is not None:
            self.mutate(tables)
        write_tables(tables, folder)
        if self.damage is not None:
            self.damage(folder)
        return folder


def _set(table: str, column: str, row: int, value: object) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        tables[table].loc[row, column] = value

    return mutate


def _drop_column(tables: Tables) -> None:
    tables["interactions"] = tables["interactions"].drop(columns=["rating"])


def _add_column(tables: Tables) -> None:
    tables["items"]["price"] = 9.99


def _timestamps_as_text(tables: Tables) -> None:
    tables["interactions"]["timestamp"] = tables["interactions"]["timestamp"].astype("string")


def _duplicate_first_item(tables: Tables) -> None:
    # A repeated row, not a renamed one: no other item disappears, so only uniqueness may fail.
    tables["items"] = pd.concat([tables["items"], tables["items"].iloc[[0]]], ignore_index=True)


def _empty_searches(tables: Tables) -> None:
    tables["searches"] = tables["searches"].iloc[0:0]


def _all_negative(tables: Tables) -> None:
    tables["interactions"]["label"] = np.zeros(len(tables["interactions"]), dtype=np.int8)


def _titles_missing(tables: Tables) -> None:
    tables["items"]["title"] = pd.array([None] * len(tables["items"]), dtype="string")


def _future(tables: Tables) -> None:
    # 30 days ahead of the wall clock: the bound must be computed at validation time to catch it.
    tables["searches"].loc[1, "timestamp"] = int(time.time()) + 30 * 86400


def _non_utf8_text(folder: Path) -> None:
    path = folder / "items.parquet"
    table = pq.read_table(path)
    raw = [v.encode("utf-8") for v in table.column("text").to_pylist()]
    raw[2] = NOT_UTF8
    position = table.column_names.index("text")
    pq.write_table(table.set_column(position, "text", pa.array(raw, type=pa.binary())), path)


def _duplicate_row(table: str, row: int) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        # the same event delivered twice, appended at the end: every column equal to an earlier row's
        tables[table] = pd.concat([tables[table], tables[table].iloc[[row]]], ignore_index=True)

    return mutate


def _items_file_is_a_folder(folder: Path) -> None:
    (folder / "items.parquet").unlink()
    (folder / "items.parquet").mkdir()


def _searches_file_is_a_symlink_loop(folder: Path) -> None:
    (folder / "searches.parquet").unlink()
    (folder / "searches.parquet").symlink_to("searches.parquet")


def _remove_searches(folder: Path) -> None:
    (folder / "searches.parquet").unlink()


def _truncate_interactions(folder: Path) -> None:
    path = folder / "interactions.parquet"
    path.write_bytes(path.read_bytes()[:40])


BROKEN_CASES: dict[str, BrokenCase] = {
    "missing_column": BrokenCase("interactions", "rating", "column_in_dataframe", mutate=_drop_column),
    "extra_column": BrokenCase("items", "price", "column_in_schema", mutate=_add_column),
    "wrong_type": BrokenCase("interactions", "timestamp", "dtype('int64')", mutate=_timestamps_as_text),
    "duplicate_item_id": BrokenCase("items", "item_id", "field_uniqueness", mutate=_duplicate_first_item),
    "dangling_interaction_item": BrokenCase(
        "interactions", "item_id", "referential_integrity", mutate=_set("interactions", "item_id", 3, "i999")
    ),
    "dangling_search_item": BrokenCase(
        "searches", "item_id", "referential_integrity", mutate=_set("searches", "item_id", 0, "ghost")
    ),
    "null_text": BrokenCase("items", "text", "not_nullable", mutate=_set("items", "text", 0, None)),
    "empty_text": BrokenCase("items", "text", "not_blank", mutate=_set("items", "text", 1, "   ")),
    "empty_query": BrokenCase("searches", "query", "not_blank", mutate=_set("searches", "query", 2, "")),
    "negative_timestamp": BrokenCase(
        "interactions",
        "timestamp",
        "greater_than_or_equal_to",
        mutate=_set("interactions", "timestamp", 4, -86400),
    ),
    "future_timestamp": BrokenCase(
        "searches", "timestamp", "expect_column_values_to_be_between", mutate=_future
    ),
    "label_outside_0_1": BrokenCase(
        "interactions", "label", "isin", mutate=_set("interactions", "label", 0, 2)
    ),
    "rating_out_of_range": BrokenCase(
        "interactions",
        "rating",
        "expect_column_values_to_be_between",
        mutate=_set("interactions", "rating", 5, 7.0),
    ),
    "label_rate": BrokenCase(
        "interactions", "label", "expect_column_mean_to_be_between", mutate=_all_negative
    ),
    "title_null_rate": BrokenCase(
        "items", "title", "expect_column_values_to_not_be_null", mutate=_titles_missing
    ),
    "query_too_long": BrokenCase(
        "searches",
        "query",
        "expect_column_value_lengths_to_be_between",
        mutate=_set("searches", "query", 3, "q" * 300),
    ),
    "empty_table": BrokenCase(
        "searches", None, "expect_table_row_count_to_be_between", mutate=_empty_searches
    ),
    "non_utf8_text": BrokenCase("items", "text", "valid_utf8", damage=_non_utf8_text),
    "missing_table_file": BrokenCase("searches", None, "table_present", damage=_remove_searches),
    "corrupt_parquet": BrokenCase("interactions", None, "readable_parquet", damage=_truncate_interactions),
    # identifier hygiene, duplicates, text lengths, path kinds (issue 40)
    "padded_user_id": BrokenCase(
        "interactions", "user_id", "no_surrounding_blanks", mutate=_set("interactions", "user_id", 2, " u1")
    ),
    "padded_item_id": BrokenCase(
        "items", "item_id", "no_surrounding_blanks", mutate=_set("items", "item_id", 3, "i4 ")
    ),
    "item_id_spelled_nan": BrokenCase(
        "searches", "item_id", "not_a_missing_value", mutate=_set("searches", "item_id", 1, "nan")
    ),
    "user_id_spelled_null": BrokenCase(
        "interactions", "user_id", "not_a_missing_value", mutate=_set("interactions", "user_id", 6, "NULL")
    ),
    "user_id_spelled_none": BrokenCase(
        "searches", "user_id", "not_a_missing_value", mutate=_set("searches", "user_id", 0, "None")
    ),
    "item_id_spelled_na": BrokenCase(
        "items", "item_id", "not_a_missing_value", mutate=_set("items", "item_id", 2, " NA")
    ),
    "duplicate_interaction_row": BrokenCase(
        "interactions", None, "no_duplicate_rows", mutate=_duplicate_row("interactions", 4)
    ),
    "duplicate_search_row": BrokenCase(
        "searches", None, "no_duplicate_rows", mutate=_duplicate_row("searches", 2)
    ),
    "text_too_long": BrokenCase(
        "items",
        "text",
        "expect_column_value_lengths_to_be_between",
        mutate=_set("items", "text", 0, "t " * 10_001),
    ),
    "title_too_long": BrokenCase(
        "items",
        "title",
        "expect_column_value_lengths_to_be_between",
        mutate=_set("items", "title", 1, "T" * 1001),
    ),
    "user_id_too_long": BrokenCase(
        "searches",
        "user_id",
        "expect_column_value_lengths_to_be_between",
        mutate=_set("searches", "user_id", 3, "u" * 257),
    ),
    "table_file_is_a_folder": BrokenCase("items", None, "table_is_a_file", damage=_items_file_is_a_folder),
    "table_file_is_a_symlink_loop": BrokenCase(
        "searches", None, "table_is_a_file", damage=_searches_file_is_a_symlink_loop
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write valid and broken canonical-table fixtures.")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    write_tables(valid_tables(), args.out_dir / "valid")
    lines = []
    for name, case in BROKEN_CASES.items():
        case.write(args.out_dir / name)
        lines.append(f"{name}\t{case.rule}\n")
    (args.out_dir / "cases.tsv").write_text("".join(lines), encoding="utf-8")
    print(f"wrote valid/ and {len(BROKEN_CASES)} broken cases to {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
