"""Corpus cleaning in polars: normalise text, filter by length, drop exact duplicates.

Input is the canonical table written by `raw_corpus` (see `assets.corpora.readers`): one row per
record with `roles` / `contents` as parallel lists. Output keeps that schema and adds
`content_hash` (stable across runs and library versions) and `n_chars`. Rows removed by a filter
are returned too, with the filter's name, so nothing disappears without a trace.
"""

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from assets.quality.language import language_column
from assets.quality.near_dups import find_near_duplicates
from assets.quality.pii import scrub

# C0 control characters except tab and newline, DEL, and the C1 block: they carry no meaning in
# training text and some tokenizers map them to unknown tokens.
_CONTROL_CHARS = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"
# Roles whose content is what the model must produce; an empty one leaves nothing to learn.
_TARGET_ROLES = ("assistant", "text")

FILTERS = ("empty_after_cleaning", "too_short", "too_long", "wrong_language", "exact_duplicate", "near_duplicate")


class CleaningConfig(BaseModel):
    """How a domain's corpus is cleaned before validation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unicode_form: Literal["NFC", "NFKC"] = Field(
        "NFC",
        description="Unicode normalisation. NFC keeps characters as written; NFKC also folds "
        "compatibility forms (ligatures, full-width digits), which helps search-like data but "
        "changes text people may want verbatim.",
    )
    min_chars: int = Field(
        20, ge=1, description="Records shorter than this many characters (all turns) are filtered."
    )
    max_chars: int = Field(
        50_000,
        ge=1,
        description="Records longer than this many characters are filtered; long plain documents "
        "are cut into windows later, so raise this rather than losing long books.",
    )
    min_rows: int = Field(
        16,
        ge=1,
        description="Fewest clean rows a domain needs to be trained; below it the domain stops at "
        "the data checks instead of producing a meaningless adapter.",
    )
    deduplicate: bool = Field(
        True, description="Drop exact duplicates (same roles and cleaned contents)."
    )

    near_dedup: bool = Field(
        True,
        description="Drop near-duplicates (MinHash/LSH over character 5-grams), keeping the first in "
        "landing order. Off: they are kept, but still share one split so none leaks into eval.",
    )
    near_dup_threshold: float = Field(
        0.85,
        ge=0.5,
        le=1.0,
        description="Jaccard similarity of character 5-grams from which two records count as near-"
        "duplicates. Lower catches looser copies and risks merging merely similar records.",
    )
    scrub_pii: bool = Field(
        False,
        description="Replace e-mail addresses, phone numbers, IP addresses and credential-looking "
        "strings (API keys, tokens, passwords, private keys) with <EMAIL>, <PHONE>, <IP>, <SECRET>; "
        "counts by kind in metadata.",
    )
    languages: list[str] = Field(
        default_factory=list,
        description="Keep only records identified (py3langid, bundled model) as one of these ISO 639-1 "
        "codes, e.g. [en]; empty keeps every language. Unreliable on texts of a few words.",
    )

    @model_validator(mode="after")
    def _languages_are_codes(self) -> "CleaningConfig":
        bad = [code for code in self.languages if not (len(code) == 2 and code.isascii() and code.islower())]
        if bad:
            raise ValueError(f"languages must be ISO 639-1 codes like 'en', got {bad}")
        return self

    @model_validator(mode="after")
    def _bounds_ordered(self) -> "CleaningConfig":
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) exceeds max_chars ({self.max_chars})")
        return self


@dataclass(frozen=True)
class CleaningResult:
    clean: pl.DataFrame
    filtered: pl.DataFrame  # the input schema plus `filter` (name of the filter that removed it)
    counts: dict[str, int]  # rows removed per filter name, every name in FILTERS present
    pii: dict[str, int] = field(default_factory=dict)  # matches replaced per kind (when scrubbing)
    languages: dict[str, int] = field(default_factory=dict)  # records per identified language (when filtering)


def _normalise(expr: pl.Expr, form: str) -> pl.Expr:
    return (
        expr.str.normalize(form)
        .str.replace_all("\r\n?", "\n")
        .str.replace_all(_CONTROL_CHARS, "")
        .str.replace_all(r"(?m)[ \t]+$", "")  # trailing spaces on each line
        .str.replace_all(r"\n{3,}", "\n\n")  # at most one blank line in a row
        .str.strip_chars()
    )


def record_key(roles: list[str], contents: list[str]) -> str:
    """The canonical text of a record, used for hashing: roles and contents, unambiguously joined."""
    return "\x1e".join(f"{role}\x1f{content}" for role, content in zip(roles, contents))


def content_hash(roles: list[str], contents: list[str]) -> str:
    """Stable 128-bit hash of a record (blake2b, unlike polars' hash which may change between releases)."""
    return hashlib.blake2b(record_key(roles, contents).encode("utf-8"), digest_size=16).hexdigest()


def clean_corpus(raw: pl.DataFrame, config: CleaningConfig) -> CleaningResult:
    """Normalise every content, then apply the filters in order; the first filter that hits wins."""
    frame = raw.with_columns(
        pl.col("contents").list.eval(_normalise(pl.element(), config.unicode_form))
    )
    pii: dict[str, int] = {}
    if config.scrub_pii:  # before hashing, so duplicates are judged on what will be trained on
        frame, pii = scrub(frame)
    languages: dict[str, int] = {}
    if config.languages:
        frame = frame.with_columns(language_column(frame))
        languages = {row[0]: int(row[1]) for row in frame["language"].value_counts(sort=True).iter_rows()}
    wrong_language = ~pl.col("language").is_in(config.languages) if config.languages else pl.lit(False)
    hashes = [content_hash(r, c) for r, c in zip(frame["roles"].to_list(), frame["contents"].to_list())]
    frame = frame.with_columns(
        pl.Series("content_hash", hashes, dtype=pl.String),
        pl.col("contents").list.eval(pl.element().str.len_chars()).list.sum().cast(pl.Int64).alias("n_chars"),
        # An empty target turn (assistant reply, plain text) means nothing to learn from the row.
        pl.struct("roles", "contents")
        .map_elements(_has_empty_target, return_dtype=pl.Boolean)
        .alias("_empty_target"),
    )
    is_duplicate = pl.col("content_hash").is_first_distinct().not_() if config.deduplicate else pl.lit(False)
    frame = frame.with_columns(
        pl.when(pl.col("_empty_target") | (pl.col("n_chars") == 0))
        .then(pl.lit("empty_after_cleaning"))
        .when(pl.col("n_chars") < config.min_chars)
        .then(pl.lit("too_short"))
        .when(pl.col("n_chars") > config.max_chars)
        .then(pl.lit("too_long"))
        .when(wrong_language)
        .then(pl.lit("wrong_language"))
        .otherwise(None)
        .alias("filter")
    )
    # Duplicates are judged among rows that survived the other filters, in landing order.
    order = ["source_file", "line"]
    survivors = frame.filter(pl.col("filter").is_null()).sort(order).with_columns(
        pl.when(is_duplicate).then(pl.lit("exact_duplicate")).otherwise(None).alias("filter")
    )
    unique = _near_duplicates(survivors.filter(pl.col("filter").is_null()), config)
    rejected = [frame.filter(pl.col("filter").is_not_null()), survivors.filter(pl.col("filter").is_not_null())]
    frame = pl.concat([*rejected, unique], how="diagonal").drop("_empty_target")
    clean = frame.filter(pl.col("filter").is_null()).drop("filter").sort(order)
    filtered = frame.filter(pl.col("filter").is_not_null()).sort(order)
    counts = {name: int((filtered["filter"] == name).sum()) for name in FILTERS}
    return CleaningResult(clean=clean, filtered=filtered, counts=counts, pii=pii, languages=languages)


def _near_duplicates(unique: pl.DataFrame, config: CleaningConfig) -> pl.DataFrame:
    """Cluster near-duplicates among exact-unique rows (landing order). Every row gets the split key
    of its cluster's first member, so a cluster never straddles train and eval; later members are
    marked `near_duplicate` when near_dedup is on."""
    texts = ["\n".join(f"{r}: {c}" for r, c in zip(roles, contents)) for roles, contents in zip(unique["roles"].to_list(), unique["contents"].to_list())]
    clusters = find_near_duplicates(texts, config.near_dup_threshold)
    drop = pl.Series(clusters.duplicates & config.near_dedup, dtype=pl.Boolean)
    return unique.with_columns(
        unique["content_hash"].gather(clusters.cluster).alias("split_key"),
        pl.when(drop).then(pl.lit("near_duplicate")).otherwise(None).alias("filter"),
    )


def _has_empty_target(row: dict) -> bool:
    return any(
        role in _TARGET_ROLES and not content for role, content in zip(row["roles"], row["contents"])
    )
