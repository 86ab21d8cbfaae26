"""MovieLens pieces shared by both file formats: the raw ratings/movies pair and how it becomes tables."""

from __future__ import annotations

import dataclasses
import re

import pandas as pd

from unigrec.data.queries import decade_of
from unigrec.data.sources.tables import labels_from_ratings
from unigrec.errors import SourceError

LICENCE = (
    "MovieLens data (GroupLens Research, University of Minnesota). Research use with acknowledgement of "
    "F. Maxwell Harper and Joseph A. Konstan, \"The MovieLens Datasets: History and Context\", ACM "
    "Transactions on Interactive Intelligent Systems (TiiS) 5(4), 2015. It must not be redistributed "
    "without permission: unigrec obtains it at run time and never commits it."
)

UNKNOWN = "unknown"
# Placeholders for a missing title or year. GroupLens lists one ml-100k movie as "unknown";
# RecBole's conversion of it reads "unkonwn" (sic).
MISSING_MARKERS = frozenset({"", "unknown", "unkonwn"})

_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")


@dataclasses.dataclass(frozen=True)
class MovieRatings:
    """What any MovieLens format boils down to, before canonical tables are built.

    ratings: user_id, item_id (str), rating (float), timestamp (int), in the file's row order.
    movies: item_id (str), title (str, no year), year (nullable int), genres (list of str).
    """

    ratings: pd.DataFrame
    movies: pd.DataFrame


def split_title_year(full_title: str) -> tuple[str, int | None]:
    """"Toy Story (1995)" -> ("Toy Story", 1995); a title without a trailing year is kept whole."""
    match = _TITLE_YEAR.match(full_title.strip())
    if match:
        return match["title"], int(match["year"])
    return full_title.strip(), None


def clean_title(title: str) -> str:
    title = title.strip()
    return UNKNOWN if title.lower() in MISSING_MARKERS else title


def parse_year(text: str) -> int | None:
    """A four-digit year, or None for placeholders and junk (RecBole's ml-100k has a year "V")."""
    text = text.strip()
    if re.fullmatch(r"\d{4}(\.0+)?", text):
        return int(float(text))
    return None


def movie_text(title: str, year: int | None, genres: list[str]) -> str:
    """What the text encoder and BM25 read: "Toy Story (1995). 1990s. Genres: Animation, Children's, Comedy.".

    The decade is written out because people search by it ("sci-fi 1990s") and neither reader can get
    it from "1995": BM25 matches whole words, and MiniLM places "1995" and "1990s" apart. Without it a
    decade query matched no item text at all (issue 41's "sci-fi action 1990s": 6 of 10 relevant)."""
    head = f"{title} ({year}). {decade_of(year)}" if year is not None else title
    return f"{head}. Genres: {', '.join(genres)}." if genres else f"{head}."


def numeric_column(frame: pd.DataFrame, column: str, path: object) -> pd.Series:
    """A column as float64; any unparsable cell is a SourceError showing the first bad row."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise SourceError(
            f"{path}: {int(bad.sum())} non-numeric {column} value(s), first at data row {row + 1}: "
            f"{frame[column].iloc[row]!r}"
        )
    return values.astype("float64")


def build_movie_tables(
    raw: MovieRatings, label_threshold: float, where: object
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items (all movies, file order) and interactions (file order: it breaks timestamp ties later)."""
    movies = raw.movies
    if movies["item_id"].duplicated().any():
        dup = movies.loc[movies["item_id"].duplicated(), "item_id"].iloc[0]
        raise SourceError(f"{where}: item id {dup!r} appears more than once in the movie file")
    unknown = ~raw.ratings["item_id"].isin(movies["item_id"])
    if unknown.any():
        raise SourceError(
            f"{where}: {int(unknown.sum())} rating(s) of movies missing from the movie file, e.g. item "
            f"{raw.ratings.loc[unknown, 'item_id'].iloc[0]!r}"
        )
    titles = movies["title"].map(clean_title)
    years = movies["year"].astype("Int64")
    items = pd.DataFrame(
        {
            "item_id": movies["item_id"].astype(str),
            "title": titles,
            "text": [
                movie_text(t, None if pd.isna(y) else int(y), g)
                for t, y, g in zip(titles, years, movies["genres"], strict=True)
            ],
            "category": [("|".join(g) if g else None) for g in movies["genres"]],
            "year": years,
        }
    )
    interactions = raw.ratings.assign(label=labels_from_ratings(raw.ratings["rating"], label_threshold))
    return items.reset_index(drop=True), interactions.reset_index(drop=True)
