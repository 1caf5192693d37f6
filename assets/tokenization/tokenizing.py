"""Tokenize a clean corpus into train/eval datasets (Hugging Face `datasets`, Arrow on disk).

The split is decided per record by a salted hash of its content, not by position or a random
draw, so a record keeps its split forever: new rows arriving never move an old row from eval
into train (which would leak eval data into training).
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from assets.tokenization.formatting import encode_record, round_trip_mismatch

_QUANTILES = (0.5, 0.9, 0.99)
ROUND_TRIP_SAMPLES = 32  # chat examples decoded back per domain: enough to catch a broken template


class TokenizationConfig(BaseModel):
    """How records become training examples."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_seq_len: int = Field(
        1024,
        ge=16,
        description="Longest example in tokens. Plain text longer than this is cut into windows; "
        "chat records are truncated (counted). Memory and time grow with it (attention is quadratic).",
    )
    eval_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Share of records held out for evaluation, assigned by content hash.",
    )
    max_truncated_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Share of chat examples that may be cut at max_seq_len before the "
        "truncation check warns; a high share means max_seq_len is too small for the domain.",
    )
    split_salt: str = Field(
        "loraline-split-v1",
        description="Salt of the split hash. Changing it reshuffles every domain's split.",
    )


@dataclass(frozen=True)
class TokenizedCorpus:
    train: Any  # datasets.Dataset
    eval: Any  # datasets.Dataset
    stats: dict[str, float | int]
    # One row per example, kept or not (split, length, supervised_tokens, truncated): what the
    # tokenization suite validates, without the tokens.
    profile: pl.DataFrame | None = None


def split_of(content_hash: str, eval_fraction: float, salt: str) -> str:
    """'eval' or 'train', a pure function of the record's content hash."""
    digest = hashlib.blake2b(f"{salt}:{content_hash}".encode(), digest_size=8).digest()
    return "eval" if int.from_bytes(digest, "big") / 2**64 < eval_fraction else "train"


def tokenize_corpus(clean: pl.DataFrame, tokenizer: Any, config: TokenizationConfig) -> TokenizedCorpus:
    """Encode every clean row; examples with no supervised token are counted and left out."""
    import datasets

    columns: dict[str, dict[str, list]] = {
        split: {"input_ids": [], "labels": [], "length": [], "source_file": [], "line": []}
        for split in ("train", "eval")
    }
    truncated = unsupervised = windowed_docs = 0
    profile: dict[str, list] = {"split": [], "length": [], "supervised_tokens": [], "truncated": []}
    for row in clean.iter_rows(named=True):
        # Near-duplicates share their cluster's split key, so none sits on the other side of the split.
        split = split_of(row.get("split_key") or row["content_hash"], config.eval_fraction, config.split_salt)
        examples = encode_record(tokenizer, row["kind"], row["roles"], row["contents"], config.max_seq_len)
        windowed_docs += len(examples) > 1
        for example in examples:
            truncated += example.truncated
            for name, value in (("split", split), ("length", len(example.input_ids)),
                                ("supervised_tokens", example.supervised_tokens), ("truncated", bool(example.truncated))):
                profile[name].append(value)
            if example.supervised_tokens == 0:
                unsupervised += 1
                continue
            target = columns[split]
            target["input_ids"].append(example.input_ids)
            target["labels"].append(example.labels)
            target["length"].append(len(example.input_ids))
            target["source_file"].append(row["source_file"])
            target["line"].append(row["line"])
    if not columns["eval"]["input_ids"] or not columns["train"]["input_ids"]:
        raise ValueError(
            f"the split left {len(columns['train']['input_ids'])} train and "
            f"{len(columns['eval']['input_ids'])} eval examples from {clean.height} rows; "
            "both need at least one: add data or change eval_fraction"
        )
    train = datasets.Dataset.from_dict(columns["train"])
    evaluation = datasets.Dataset.from_dict(columns["eval"])
    stats = _stats(columns, clean.height, truncated, unsupervised, windowed_docs)
    schema = {"split": pl.String, "length": pl.Int64, "supervised_tokens": pl.Int64, "truncated": pl.Boolean}
    return TokenizedCorpus(train=train, eval=evaluation, stats=stats, profile=pl.DataFrame(profile, schema=schema))


def _stats(columns: dict, rows: int, truncated: int, unsupervised: int, windowed: int) -> dict:
    lengths = pl.Series(columns["train"]["length"] + columns["eval"]["length"], dtype=pl.Int64)
    supervised = {
        split: sum(sum(label != -100 for label in labels[1:]) for labels in columns[split]["labels"])
        for split in columns
    }
    stats: dict[str, float | int] = {
        "rows": rows,
        "train_examples": len(columns["train"]["length"]),
        "eval_examples": len(columns["eval"]["length"]),
        "train_tokens": int(sum(columns["train"]["length"])),
        "eval_tokens": int(sum(columns["eval"]["length"])),
        "train_supervised_tokens": supervised["train"],
        "eval_supervised_tokens": supervised["eval"],
        "truncated_examples": truncated,
        "unsupervised_examples": unsupervised,
        "windowed_documents": windowed,
        "length_max": int(lengths.max()),
    }
    for q in _QUANTILES:
        stats[f"length_p{int(q * 100)}"] = float(lengths.quantile(q, interpolation="nearest"))
    return stats


def round_trip_failures(clean: pl.DataFrame, tokenizer: Any, config: TokenizationConfig) -> tuple[int, list[str]]:
    """Decode the first chat/instruction examples back; (how many checked, failures with provenance)."""
    chats = clean.filter(pl.col("kind") != "text").head(ROUND_TRIP_SAMPLES)
    failures = []
    for row in chats.iter_rows(named=True):
        reason = round_trip_mismatch(tokenizer, row["roles"], row["contents"], config.max_seq_len)
        if reason:
            failures.append(f"{row['source_file']}:{row['line']}: {reason}")
    return chats.height, failures
