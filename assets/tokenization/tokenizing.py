"""Tokenize a clean corpus into train/eval datasets (Hugging Face `datasets`, Arrow on disk).

The split is decided per record by a salted hash of its content, not by position or a random
draw, so a record keeps its split forever: new rows arriving never move an old row from eval
into train (which would leak eval data into training).
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import polars as pl

from assets.models.batches import count_supervised
from assets.models.chat_format import ChatFormat, chat_format
from assets.settings.tokenization import TokenizationConfig
from assets.tokenization.formatting import encode_record, inspect_round_trip

_QUANTILES = (0.5, 0.9, 0.99)
ROUND_TRIP_SAMPLES = 32  # chat examples decoded back per domain: enough to catch a broken template


@dataclass(frozen=True)
class TokenizedCorpus:
    train: Any  # datasets.Dataset
    eval: Any  # datasets.Dataset
    stats: dict[str, float | int]
    # One row per example kept, and one per record rejected (supervised_tokens 0): split, length,
    # supervised_tokens, truncated. What the tokenization suite validates, without the tokens.
    profile: pl.DataFrame | None = None
    # Records that yielded nothing to learn: source_file, line, content_hash, reason.
    rejected: pl.DataFrame | None = None


REJECTED_SCHEMA = {"source_file": pl.String, "line": pl.Int64, "content_hash": pl.String, "reason": pl.String}


def split_of(content_hash: str, eval_fraction: float, salt: str) -> str:
    """'eval' or 'train', a pure function of the record's content hash."""
    digest = hashlib.blake2b(f"{salt}:{content_hash}".encode(), digest_size=8).digest()
    return "eval" if int.from_bytes(digest, "big") / 2**64 < eval_fraction else "train"


def clamp_to_context(config: TokenizationConfig, context_length: int | None) -> tuple[TokenizationConfig, str | None]:
    """max_seq_len clamped to the base model's context length (base_model's `context_length`), and
    a warning saying so (or None). Positions past it were never trained and may not even exist."""
    if context_length is None or config.max_seq_len <= context_length:
        return config, None
    warning = f"max_seq_len {config.max_seq_len} exceeds the base model's context length {context_length}; clamped to {context_length}"
    return config.model_copy(update={"max_seq_len": context_length}), warning


def tokenize_corpus(clean: pl.DataFrame, tokenizer: Any, config: TokenizationConfig, fmt: ChatFormat | None = None) -> TokenizedCorpus:
    """Encode every clean row in this process, datasets in memory (what tests and small callers
    want; `streaming.stream_tokenize` is the same work for a corpus of any size, on disk)."""
    import datasets
    import pyarrow as pa

    from assets.tokenization.streaming import CHUNK_ROWS, dataset_features, encode_chunk
    from assets.tokenization.totals import Totals

    fmt = fmt or chat_format(tokenizer)
    totals, batches = Totals(), {"train": [], "eval": []}
    for batch in clean.to_arrow().to_batches(max_chunksize=CHUNK_ROWS):
        chunk = encode_chunk(tokenizer, fmt, batch, config)
        totals.add(chunk)
        for split, part in chunk.batches.items():
            batches[split].append(part)
    stats, profile, rejected = totals.finish()
    schema = dataset_features().arrow_schema
    train, evaluation = (datasets.Dataset(datasets.table.InMemoryTable(pa.Table.from_batches(batches[split], schema=schema)))
                         for split in ("train", "eval"))
    return TokenizedCorpus(train=train, eval=evaluation, stats=stats, profile=profile, rejected=rejected)


def tokenize_corpus_per_row(clean: pl.DataFrame, tokenizer: Any, config: TokenizationConfig, fmt: ChatFormat | None = None) -> TokenizedCorpus:
    """The per-row path (encode_record per row, every token list in memory): the reference the
    batched, streamed path is tested against, and the "before" of benchmarks/tokenize_throughput.py."""
    import datasets

    fmt = fmt or chat_format(tokenizer)
    columns: dict[str, dict[str, list]] = {
        split: {"input_ids": [], "labels": [], "length": [], "source_file": [], "line": []}
        for split in ("train", "eval")
    }
    counts = dict.fromkeys(("truncated_examples", "windowed_documents", "split_conversations", "system_folded_rows", "exchanges_dropped"), 0)
    profile: dict[str, list] = {"split": [], "length": [], "supervised_tokens": [], "truncated": []}
    rejected: dict[str, list] = {name: [] for name in REJECTED_SCHEMA}
    for row in clean.iter_rows(named=True):
        split = split_of(row.get("split_key") or row["content_hash"], config.eval_fraction, config.split_salt)
        encoded = encode_record(tokenizer, fmt, row["kind"], row["roles"], row["contents"], config.max_seq_len)
        counts["windowed_documents"] += row["kind"] == "text" and len(encoded.examples) > 1
        counts["split_conversations"] += row["kind"] != "text" and len(encoded.examples) > 1
        counts["system_folded_rows"] += encoded.system_folded
        counts["exchanges_dropped"] += encoded.exchanges_dropped
        if encoded.rejected:
            for name, value in zip(REJECTED_SCHEMA, (row["source_file"], row["line"], row["content_hash"], encoded.rejected)):
                rejected[name].append(value)
            for name, value in zip(profile, (split, 0, 0, False)):
                profile[name].append(value)
            continue
        for example in encoded.examples:
            counts["truncated_examples"] += example.truncated
            for name, value in zip(profile, (split, len(example.input_ids), example.supervised_tokens, bool(example.truncated))):
                profile[name].append(value)
            target = columns[split]
            target["input_ids"].append(example.input_ids)
            target["labels"].append(example.labels)
            target["length"].append(len(example.input_ids))
            target["source_file"].append(row["source_file"])
            target["line"].append(row["line"])
    if not columns["eval"]["input_ids"] or not columns["train"]["input_ids"]:
        raise ValueError(
            f"the split left {len(columns['train']['input_ids'])} train and "
            f"{len(columns['eval']['input_ids'])} eval examples from {clean.height} rows"
            + (f" ({len(rejected['reason'])} rows had nothing to learn, first: {rejected['reason'][0]})" if rejected["reason"] else "")
            + "; both need at least one: add data or change eval_fraction"
        )
    train = datasets.Dataset.from_dict(columns["train"])
    evaluation = datasets.Dataset.from_dict(columns["eval"])
    stats = _stats(columns, clean.height, len(rejected["reason"]), counts)
    schema = {"split": pl.String, "length": pl.Int64, "supervised_tokens": pl.Int64, "truncated": pl.Boolean}
    return TokenizedCorpus(train=train, eval=evaluation, stats=stats, profile=pl.DataFrame(profile, schema=schema),
                           rejected=pl.DataFrame(rejected, schema=REJECTED_SCHEMA))


def _stats(columns: dict, rows: int, rejected: int, counts: dict[str, int]) -> dict:
    lengths = pl.Series(columns["train"]["length"] + columns["eval"]["length"], dtype=pl.Int64)
    supervised = {
        split: sum(count_supervised(labels) for labels in columns[split]["labels"])
        for split in columns
    }
    stats: dict[str, float | int] = {
        "rows": rows,
        "rows_rejected": rejected,
        "train_examples": len(columns["train"]["length"]),
        "eval_examples": len(columns["eval"]["length"]),
        "train_tokens": int(sum(columns["train"]["length"])),
        "eval_tokens": int(sum(columns["eval"]["length"])),
        "train_supervised_tokens": supervised["train"],
        "eval_supervised_tokens": supervised["eval"],
        **counts,
        "length_max": int(lengths.max()),
    }
    for q in _QUANTILES:
        stats[f"length_p{int(q * 100)}"] = float(lengths.quantile(q, interpolation="nearest"))
    return stats


@dataclass(frozen=True)
class RoundTrip:
    checked: int  # chat rows sampled
    failures: list[str]  # rows whose supervised tokens are not exactly their answers (with provenance)
    text_changes: list[str]  # rows the tokenizer does not decode back verbatim (its own normalisation)


def round_trip(clean: pl.DataFrame, tokenizer: Any, config: TokenizationConfig, fmt: ChatFormat | None = None) -> RoundTrip:
    """Decode the first chat/instruction examples back and compare with their answers."""
    fmt = fmt or chat_format(tokenizer)
    chats = clean.filter(pl.col("kind") != "text").head(ROUND_TRIP_SAMPLES)
    failures, changes = [], []
    for row in chats.iter_rows(named=True):
        where = f"{row['source_file']}:{row['line']}"
        reason, change = inspect_round_trip(tokenizer, fmt, row["roles"], row["contents"], config.max_seq_len)
        if reason:
            failures.append(f"{where}: {reason}")
        if change:
            changes.append(f"{where}: {change}")
    return RoundTrip(chats.height, failures, changes)
