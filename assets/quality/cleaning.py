"""Corpus cleaning in polars, streamed: normalise text, filter, drop exact and near duplicates.

Input is the canonical table written by `raw_corpus` (see `assets.corpora.readers`): one row per
record with `roles` / `contents` as parallel lists, in landing order (file, line). Output keeps that
schema and adds `content_hash` (stable across runs and library versions), `n_chars` and `split_key`
(the hash of the first member of a record's near-duplicate cluster, so a cluster never straddles
train and eval). Rows removed by a filter are returned too, with the filter's name, so nothing
disappears without a trace.

Memory is bounded by the batch, not the corpus. Pass 1 streams batches through polars' streaming
engine (normalisation, length and repetition filters), hashes them, judges exact duplicates against
the hashes seen so far and signs the survivors for near-duplicate search, spooling each batch to
disk. Only what de-duplication must remember stays in memory: per surviving record its hash and a
256-byte MinHash signature. Pass 2 clusters the signatures and streams the spool into the outputs.
"""

import hashlib
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from assets.common.memory import returning_freed_memory
from assets.quality.language import language_column
from assets.quality.near_dups import SIGNATURE_BYTES, cluster_signatures, signatures
from assets.quality.pii import scrub
from assets.settings.cleaning import FILTERS, CleaningConfig

__all__ = ["CleaningResult", "CleaningSummary", "clean_corpus", "clean_parquet", "content_hash", "record_key"]

# C0 control characters except tab and newline, DEL, and the C1 block: they carry no meaning in
# training text and some tokenizers map them to unknown tokens.
_CONTROL_CHARS = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"
# Roles whose content is what the model must produce; an empty one leaves nothing to learn.
_TARGET_ROLES = ("assistant", "text")
# Columns a clean row profile keeps for the data checks: small, so checks never reload the text.
PROFILE_COLUMNS = ("content_hash", "n_chars", "shortest_target")


@dataclass(frozen=True)
class CleaningResult:
    clean: pl.DataFrame
    filtered: pl.DataFrame  # the input schema plus `filter` (name of the filter that removed it)
    counts: dict[str, int]  # rows removed per filter name, every name in FILTERS present
    pii: dict[str, int] = field(default_factory=dict)  # matches replaced per kind (when scrubbing)
    languages: dict[str, int] = field(default_factory=dict)  # records per identified language (when filtering)


@dataclass(frozen=True)
class CleaningSummary:
    """What `clean_parquet` wrote, without the rows: counts and the clean rows' profile."""

    rows_in: int
    counts: dict[str, int]
    profile: pl.DataFrame  # PROFILE_COLUMNS of every clean row, for the data checks
    pii: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    @property
    def rows_clean(self) -> int:
        return self.profile.height

    @property
    def characters(self) -> int:
        return int(self.profile["n_chars"].sum() or 0)


def record_key(roles: list[str], contents: list[str]) -> str:
    """The canonical text of one record, computed as cleaning computes it (`record_texts`)."""
    return record_texts(pl.DataFrame({"roles": [roles], "contents": [contents]}))["_key"][0]


def content_hash(roles: list[str], contents: list[str]) -> str:
    """One record's hash, computed as cleaning computes it."""
    return key_hash(record_key(roles, contents))


def key_hash(key: str | None) -> str:
    """Stable 128-bit hash of a record key (blake2b, unlike polars' hash which may change between releases)."""
    return hashlib.blake2b((key or "").encode("utf-8"), digest_size=16).hexdigest()


def record_texts(frame: pl.DataFrame) -> pl.DataFrame:
    """Per row: `_key`, roles and contents unambiguously joined (what the content hash is of), and
    `_near_text`, the readable text near-duplicate detection compares."""
    return (frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), "roles", "contents")
            .explode("roles", "contents")
            .group_by("_row", maintain_order=True)
            .agg(pl.concat_str("roles", pl.lit("\x1f"), "contents").str.join("\x1e").alias("_key"),
                 pl.concat_str("roles", pl.lit(": "), "contents").str.join("\n").alias("_near_text")))


def clean_corpus(raw: pl.DataFrame, config: CleaningConfig) -> CleaningResult:
    """Clean an in-memory table (tests, small domains): the same engine as `clean_parquet`."""
    clean_parts, filtered_parts = [], []
    summary = _run(raw.sort("source_file", "line", maintain_order=True).lazy(), config,
                   lambda clean, filtered: (clean_parts.append(clean), filtered_parts.append(filtered)))
    empty_clean, empty_filtered = _empty_outputs(raw.head(0), config)
    return CleaningResult(
        clean=pl.concat([empty_clean, *clean_parts], how="diagonal_relaxed"),
        filtered=pl.concat([empty_filtered, *filtered_parts], how="diagonal_relaxed"),
        counts=summary.counts, pii=summary.pii, languages=summary.languages,
    )


def clean_parquet(rows_path: Path, clean_path: Path, filtered_path: Path, config: CleaningConfig) -> CleaningSummary:
    """Clean a `rows.parquet` written in landing order into two parquet files, streaming."""
    writers: dict[Path, pq.ParquetWriter] = {}

    def write(clean: pl.DataFrame, filtered: pl.DataFrame) -> None:
        for path, part in ((clean_path, clean), (filtered_path, filtered)):
            table = part.to_arrow()
            if path not in writers:
                writers[path] = pq.ParquetWriter(path, table.schema, compression="zstd")
            writers[path].write_table(table.cast(writers[path].schema), row_group_size=config.batch_rows)

    with returning_freed_memory():
        try:
            summary = _run(pl.scan_parquet(rows_path), config, write, spool_under=clean_path.parent)
            if clean_path not in writers or filtered_path not in writers:  # an empty side still gets its schema
                write(*_empty_outputs(pl.read_parquet(rows_path, n_rows=0), config))
        finally:
            for writer in writers.values():
                writer.close()
    return summary


def _run(rows: pl.LazyFrame, config: CleaningConfig, write: Callable[[pl.DataFrame, pl.DataFrame], None],
         spool_under: Path | None = None) -> CleaningSummary:
    counts, pii, languages = Counter({name: 0 for name in FILTERS}), Counter(), Counter()
    seen: set[str] = set()
    kept_hashes: list[str] = []
    kept_signatures: list[np.ndarray] = []
    rows_in = 0
    # The spool is about the corpus's size: beside the outputs, not in /tmp (often a RAM disk).
    with tempfile.TemporaryDirectory(prefix=".spool-", dir=spool_under) as spool:
        # Pass 1: normalise (streaming engine), filter, hash, exact duplicates, sign the survivors.
        spooled = []
        for batch in _batches(rows, config):
            rows_in += batch.height
            frame, batch_pii = scrub(batch) if config.scrub_pii else (batch, {})
            pii.update(batch_pii)
            frame = _features(frame, config)
            if config.languages:
                languages.update(frame["language"].drop_nulls().to_list())
            frame = _mark_exact_duplicates(frame, seen, config.deduplicate)
            survivors = frame.filter(pl.col("filter").is_null())
            kept_hashes.extend(survivors["content_hash"].to_list())
            kept_signatures.append(signatures(survivors["_near_text"]))
            path = Path(spool) / f"{len(spooled):06d}.parquet"
            frame.drop("_near_text").write_parquet(path)
            spooled.append(path)
        # Pass 2: cluster the near-duplicates, then stream the spool out with split keys.
        signed = np.concatenate(kept_signatures) if kept_signatures else np.zeros((0, SIGNATURE_BYTES), np.uint8)
        clusters = cluster_signatures(signed, config.near_dup_threshold)
        split_keys = np.asarray(kept_hashes, dtype=object)[clusters.cluster] if kept_hashes else np.zeros(0, object)
        near_dups = clusters.duplicates & config.near_dedup
        profiles, offset = [], 0
        for path in spooled:
            frame = pl.read_parquet(path)
            survivor = frame["filter"].is_null().to_numpy()
            keys = np.full(frame.height, None, dtype=object)
            keys[survivor] = split_keys[offset:offset + survivor.sum()]
            drop = np.zeros(frame.height, dtype=bool)
            drop[survivor] = near_dups[offset:offset + survivor.sum()]
            offset += int(survivor.sum())
            frame = frame.with_columns(
                pl.when(pl.Series(drop)).then(pl.lit("near_duplicate")).otherwise(pl.col("filter")).alias("filter"))
            profiles.append(frame.filter(pl.col("filter").is_null()).select(PROFILE_COLUMNS))
            counts.update(frame["filter"].drop_nulls().to_list())
            out = _finish(frame, pl.Series("split_key", keys.tolist(), dtype=pl.String))
            write(out.filter(pl.col("filter").is_null()).drop("filter"), out.filter(pl.col("filter").is_not_null()))
    profile = pl.concat(profiles) if profiles else pl.DataFrame(schema={"content_hash": pl.String, "n_chars": pl.Int64, "shortest_target": pl.Int64})
    return CleaningSummary(rows_in=rows_in, counts=dict(counts),
                           profile=profile, pii={k: pii[k] for k in pii} if config.scrub_pii else {},
                           languages=dict(languages.most_common()), batches=len(spooled))


def _batches(rows: pl.LazyFrame, config: CleaningConfig) -> Iterator[pl.DataFrame]:
    """The input in batches of `batch_rows`, each normalised by polars' streaming engine.

    One slice at a time, pulled only when the previous batch is done, so nothing is read ahead of
    the (slower, partly Python) consumer.
    """
    total = rows.select(pl.len()).collect().item()
    for offset in range(0, total, config.batch_rows):
        yield (rows.slice(offset, config.batch_rows)
               .with_columns(pl.col("contents").list.eval(_normalise(pl.element(), config.unicode_form)))
               .collect(engine="streaming"))


def _normalise(expr: pl.Expr, form: str) -> pl.Expr:
    return (
        expr.str.normalize(form)
        .str.replace_all("\r\n?", "\n")
        .str.replace_all(_CONTROL_CHARS, "")
        .str.replace_all(r"(?m)[ \t]+$", "")  # trailing spaces on each line
        .str.replace_all(r"\n{3,}", "\n\n")  # at most one blank line in a row
        .str.strip_chars()
    )


def _features(frame: pl.DataFrame, config: CleaningConfig) -> pl.DataFrame:
    """Hash, length, repetition and the first filter (other than duplicates) that hits each row."""
    if config.languages:
        frame = frame.with_columns(language_column(frame))
    pairs = record_texts(frame)
    hashes = [key_hash(key) for key in pairs["_key"].to_list()]
    target = pl.col("roles").list.eval(pl.element().is_in(_TARGET_ROLES)).cast(pl.List(pl.Int64))
    turn_chars = pl.col("contents").list.eval(pl.element().str.len_chars()).cast(pl.List(pl.Int64))
    lines = pl.col("contents").list.join("\n").str.split("\n").list.eval(pl.element().filter(pl.element() != ""))
    repeated = lines.list.eval(pl.element().filter(pl.element().is_first_distinct().not_()).str.len_chars().sum()).list.first()
    wrong_language = ~pl.col("language").is_in(config.languages) if config.languages else pl.lit(False)
    frame = frame.with_columns(
        pl.Series("content_hash", hashes, dtype=pl.String),
        pl.Series("_near_text", pairs["_near_text"], dtype=pl.String),
        turn_chars.list.sum().cast(pl.Int64).alias("n_chars"),
        # Length of the shortest turn the model must produce: 0 means nothing to learn from the row.
        (turn_chars * target + (1 - target) * 2**62).list.min().fill_null(0).alias("shortest_target"),
        (repeated.fill_null(0) / lines.list.eval(pl.element().str.len_chars().sum()).list.first().clip(1)).alias("_repeated_share"),
    )
    return frame.with_columns(
        pl.when((pl.col("shortest_target") == 0) | (pl.col("n_chars") == 0)).then(pl.lit("empty_after_cleaning"))
        .when(pl.col("n_chars") < config.min_chars).then(pl.lit("too_short"))
        .when(pl.col("n_chars") > config.max_chars).then(pl.lit("too_long"))
        .when(pl.col("_repeated_share") > config.max_repeated_line_share).then(pl.lit("repetitive"))
        .when(wrong_language).then(pl.lit("wrong_language"))
        .otherwise(None).alias("filter")
    ).drop("_repeated_share")


def _mark_exact_duplicates(frame: pl.DataFrame, seen: set[str], deduplicate: bool) -> pl.DataFrame:
    """Mark rows whose hash was kept before (in this batch or an earlier one), in landing order;
    only rows that survived the other filters count, so a too-short copy never shadows a good one."""
    if not deduplicate:
        return frame
    duplicate = []
    for hash_, reason in zip(frame["content_hash"].to_list(), frame["filter"].to_list()):
        duplicate.append(reason is None and hash_ in seen)
        if reason is None:
            seen.add(hash_)
    return frame.with_columns(
        pl.when(pl.Series(duplicate, dtype=pl.Boolean)).then(pl.lit("exact_duplicate")).otherwise(pl.col("filter")).alias("filter"))


def _empty_outputs(no_rows: pl.DataFrame, config: CleaningConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(clean, filtered) with no rows but the output schema, from an empty input table."""
    empty = _finish(_features(no_rows, config), pl.Series("split_key", [], pl.String))
    return empty.drop("filter"), empty


def _finish(frame: pl.DataFrame, split_key: pl.Series) -> pl.DataFrame:
    return frame.with_columns(split_key).select(
        *[c for c in frame.columns if c not in ("filter", "shortest_target", "_near_text")], "split_key", "filter")
