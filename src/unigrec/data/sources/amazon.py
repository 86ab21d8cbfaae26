"""Amazon 2014 (McAuley) 5-core reviews + metadata, with Ai et al.'s product-search queries if given.

Files looked up in ``ingest.path``:
- ``reviews_<Cat>_5.json[.gz]``: one JSON object per line (reviewerID, asin, overall, unixReviewTime).
- ``meta_<Cat>.json[.gz]``: one Python dict literal per line (asin, title, description, categories =
  list of category paths); strict JSON lines are accepted too.
- optional, in the folder or one sub-folder (QingyaoAi/Amazon-Product-Search-Datasets):
  ``query_text.txt[.gz]`` (one query per line, line numbers from 0) and ``*.qrels[.gz]`` lines
  ``<reviewerID>_<query line> 0 <asin> <relevance>``. Relevant (1) pairs become search events.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from unigrec.config import IngestConfig
from unigrec.data.sources.tables import (
    SourceFile,
    SourceTables,
    label_rule_text,
    labels_from_ratings,
    record_file,
)
from unigrec.data.sources.textio import first_existing, read_text, require_folder
from unigrec.errors import SourceError
from unigrec.logs import progress

log = logging.getLogger(__name__)

LICENCE = (
    "Amazon review data 2014 (J. McAuley, UCSD): research use; cite R. He and J. McAuley, \"Ups and downs: "
    "Modeling the visual evolution of fashion trends with one-class collaborative filtering\", WWW 2016, "
    "and J. McAuley, C. Targett, Q. Shi, A. van den Hengel, \"Image-based recommendations on styles and "
    "substitutes\", SIGIR 2015. Query files, when used: cite Q. Ai, Y. Zhang, K. Bi, X. Chen, W. B. Croft, "
    "\"Learning a Hierarchical Embedding Model for Personalized Product Search\", SIGIR 2017. The files are "
    "supplied by the user; unigrec does not redistribute them."
)
CATEGORY_SEPARATOR = " > "
UNKNOWN_TITLE = "unknown"
_REVIEWS = re.compile(r"^reviews_(?P<cat>.+)_5\.json(\.gz)?$")
# Cheap pre-filter: most metadata lines describe items outside the 5-core set; parse only wanted ones.
_ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"](?P<asin>[^'"]+)['"]""")
_REVIEW_FIELDS = ("reviewerID", "asin", "overall", "unixReviewTime")
QUERY_TEXT_NAMES = ("query_text.txt", "query_text.txt.gz")
_QRELS_FIELDS = 4


def _reviews_file(folder: Path) -> tuple[Path, str]:
    found = sorted(p for p in folder.iterdir() if p.is_file() and _REVIEWS.match(p.name))
    if len(found) != 1:
        raise SourceError(
            f"{folder}: expected exactly one reviews_<Category>_5.json[.gz] file, found "
            f"{[p.name for p in found] or 'none'}"
        )
    return found[0], _REVIEWS.match(found[0].name)["cat"]  # type: ignore[index]


def read_reviews(path: Path) -> pd.DataFrame:
    """user_id, item_id, rating, timestamp in file order."""
    rows: list[tuple[str, str, float, int]] = []
    lines = read_text(path, "utf-8", "5-core reviews, one JSON object per line").splitlines()
    for number, line in enumerate(progress(lines, desc="reviews", unit="line"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            rows.append((str(record["reviewerID"]), str(record["asin"]), float(record["overall"]),
                         int(record["unixReviewTime"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(
                f"{path}: line {number} is not a review object with {', '.join(_REVIEW_FIELDS)}: {exc}"
            ) from exc
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def _parse_meta_line(line: str) -> Any:
    """McAuley's metadata lines are Python literals (single quotes); some re-exports are strict JSON."""
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError):
        return json.loads(line)


def read_meta(path: Path, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """asin -> metadata record, for the asins in ``wanted`` only."""
    meta: dict[str, dict[str, Any]] = {}
    lines = read_text(path, "utf-8", "product metadata, one dict per line").splitlines()
    for number, line in enumerate(progress(lines, desc="metadata", unit="line"), start=1):
        if not line.strip():
            continue
        hint = _ASIN.search(line)
        if hint is not None and hint["asin"] not in wanted:
            continue
        try:
            record = _parse_meta_line(line)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise SourceError(f"{path}: line {number} is neither a Python dict literal nor JSON: {exc}") from exc
        if not isinstance(record, dict) or "asin" not in record:
            raise SourceError(f"{path}: line {number} has no 'asin'")
        if record["asin"] in wanted:
            meta[str(record["asin"])] = record
    return meta


def category_path(categories: Any) -> str | None:
    """The first path with two or more levels (Ai et al. ignore one-level paths), else the first one."""
    paths = [[str(level).strip() for level in p if str(level).strip()] for p in (categories or []) if p]
    paths = [p for p in paths if p]
    if not paths:
        return None
    chosen = next((p for p in paths if len(p) > 1), paths[0])
    return CATEGORY_SEPARATOR.join(chosen)


def _item_text(title: str, category: str | None, description: str | None) -> str:
    parts = [title]
    if category:
        parts.append(f"Category: {category}")
    if description:
        parts.append(description)
    return ". ".join(p.rstrip(". ") for p in parts) + "."


def build_items(asins: list[str], meta: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per reviewed asin, in order of first review; missing metadata leaves "unknown"/nulls."""
    rows = []
    for asin in asins:
        record = meta.get(asin, {})
        title = str(record.get("title") or "").strip() or UNKNOWN_TITLE
        category = category_path(record.get("categories"))
        description = str(record.get("description") or "").strip() or None
        rows.append({"item_id": asin, "title": title, "text": _item_text(title, category, description),
                     "category": category})
    return pd.DataFrame(rows, columns=["item_id", "title", "text", "category"])


def _query_files(folder: Path) -> tuple[Path, list[Path]] | None:
    """query_text + qrels files, in ``folder`` or exactly one of its sub-folders."""
    places = [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]
    hits = [(place, name) for place in places for name in QUERY_TEXT_NAMES if (place / name).is_file()]
    if not hits:
        return None
    if len(hits) > 1:
        raise SourceError(f"{folder}: more than one query_text file: {[str(p / n) for p, n in hits]}")
    place, name = hits[0]
    qrels = sorted(p for p in place.iterdir() if p.is_file() and re.search(r"\.qrels(\.gz)?$", p.name))
    if not qrels:
        raise SourceError(f"{place}: {name} is present but no *.qrels[.gz] file pairs users and items with it")
    return place / name, qrels


def read_relevant_pairs(query_path: Path, qrels_paths: list[Path]) -> pd.DataFrame:
    """user_id, item_id, query for every relevant (label 1) qrels line; one query per (user, item).

    A purchase pairs with every query of the item; one purchase is one event, so the query with the
    lowest line number is kept (a deterministic choice that does not depend on file order).
    """
    queries = read_text(query_path, "utf-8", "one query per line").splitlines()
    rows: list[tuple[str, str, int]] = []
    for path in qrels_paths:
        for number, line in enumerate(read_text(path, "utf-8", "qrels lines").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            user, sep, query_line = fields[0].rpartition("_")
            if len(fields) != _QRELS_FIELDS or not sep or not query_line.isdigit() or not user:
                raise SourceError(f"{path}: line {number} is not '<reviewerID>_<query line> 0 <asin> <label>': "
                                  f"{line!r}")
            if int(query_line) >= len(queries):
                raise SourceError(f"{path}: line {number} refers to query line {query_line}, but "
                                  f"{query_path.name} has {len(queries)} lines")
            if fields[3] == "1":
                rows.append((user, fields[2], int(query_line)))
    pairs = pd.DataFrame(rows, columns=["user_id", "item_id", "query_line"])
    pairs = pairs.sort_values("query_line", kind="stable").drop_duplicates(["user_id", "item_id"])
    pairs["query"] = [queries[i].strip() for i in pairs["query_line"]]
    return pairs.drop(columns="query_line")


def split_search_purchases(
    interactions: pd.DataFrame, pairs: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Move the purchases that have a query into a search table; return (rest, searches, unmatched pairs).

    Both outputs keep review-file order. A purchase is either a search or a recommendation event.
    """
    keyed = interactions.assign(_row=np.arange(len(interactions)))
    matched = keyed.merge(pairs, on=["user_id", "item_id"], how="inner").sort_values("_row")
    is_search = np.zeros(len(interactions), dtype=bool)
    is_search[matched["_row"].to_numpy()] = True
    matched_pairs = matched[["user_id", "item_id"]].drop_duplicates()
    unmatched = len(pairs) - len(matched_pairs)
    searches = matched[["user_id", "query", "item_id", "timestamp"]].reset_index(drop=True)
    return interactions.loc[~is_search].reset_index(drop=True), searches, unmatched


def load_amazon2014(cfg: IngestConfig, cache_dir: Path) -> SourceTables:
    """Amazon 5-core reviews -> tables; Ai et al.'s queries when present, else searches are left to the
    semi-synthetic rule (the item's category path as its query)."""
    folder = require_folder(cfg.path, cfg.source)
    reviews_path, category = _reviews_file(folder)
    meta_path = first_existing(folder, (f"meta_{category}.json.gz", f"meta_{category}.json"),
                               f"metadata for category {category}")
    reviews = read_reviews(reviews_path)
    asins = list(pd.unique(reviews["item_id"]))
    meta = read_meta(meta_path, set(asins))
    if missing := len(asins) - len(meta):
        log.warning("amazon2014: %d reviewed item(s) have no metadata; titled %r", missing, UNKNOWN_TITLE)
    interactions = reviews.assign(label=labels_from_ratings(reviews["rating"], cfg.label_threshold))
    files: list[SourceFile] = [record_file(reviews_path, reviews_path.name), record_file(meta_path, meta_path.name)]
    searches, query_rule = None, None
    query_files = _query_files(folder)
    if query_files is not None:
        query_path, qrels_paths = query_files
        pairs = read_relevant_pairs(query_path, qrels_paths)
        interactions, searches, unmatched = split_search_purchases(interactions, pairs)
        if unmatched:
            log.warning("amazon2014: %d relevant user-item pair(s) in the qrels have no review; skipped", unmatched)
        files += [record_file(p, str(p.relative_to(folder))) for p in (query_path, *qrels_paths)]
        query_rule = (
            "Queries from Ai et al. (SIGIR'17), built from category paths (Van Gysel et al. 2016): every "
            "relevant (label 1) user-query-item line of the qrels files made the user's review of that item "
            "a search event (one per purchase, the query with the lowest line number), removed from the "
            "interaction stream; its timestamp is the review time."
        )
    log.info("amazon2014 (%s): %d reviews, %d items, %s searches", category, len(reviews), len(asins),
             "no" if searches is None else len(searches))
    return SourceTables(
        items=build_items(asins, meta),
        interactions=interactions,
        searches=searches,
        source=cfg.source,
        origin=f"local Amazon 2014 files ({category}) in {folder}",
        licence=LICENCE,
        files=tuple(files),
        label_rule=label_rule_text(cfg.label_threshold),
        query_rule=query_rule,
    )
