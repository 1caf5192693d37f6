"""What the parent keeps of a streamed tokenization: one narrow profile row per example (for the
statistics and the `training_dataset` checks), the rejected rows and the counters; and the progress
lines. Used by streaming.py and by the in-memory path (tokenizing.tokenize_corpus).

Pure: no dagster.
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from assets.tokenization.tokenizing import _QUANTILES, REJECTED_SCHEMA

LOG_EVERY_S = 5.0
COUNTS = ("truncated_examples", "windowed_documents", "split_conversations", "system_folded_rows", "exchanges_dropped")
PROFILE_SCHEMA = {"split": pl.String, "length": pl.Int64, "supervised_tokens": pl.Int64, "truncated": pl.Boolean}
SPLITS = ("train", "eval")

# The profile is the one thing the parent keeps per example; at these widths it is 11 bytes each
# (a '<U5' split and int64 counts made it 46: 56 MB more for the 1.6 million examples of 1 GB of
# mixed text), widened in Totals.finish.
PROFILE_DTYPES = {"split": np.int8, "length": np.int32, "supervised_tokens": np.int32, "truncated": np.bool_, "kept": np.bool_}


def compact_profile(profile: dict[str, list]) -> dict[str, np.ndarray]:
    """The profile lists of a chunk as narrow arrays, the split as its index in SPLITS."""
    codes = {split: code for code, split in enumerate(SPLITS)}
    columns = {**profile, "split": [codes[split] for split in profile["split"]]}
    return {name: np.array(values, dtype=PROFILE_DTYPES[name]) for name, values in columns.items()}


class Totals:
    """The profile, rejected rows and counters of every chunk, kept as compact columns."""

    def __init__(self) -> None:
        self.profile: dict[str, list[np.ndarray]] = {name: [] for name in (*PROFILE_SCHEMA, "kept")}
        self.rejected: dict[str, list] = {name: [] for name in REJECTED_SCHEMA}
        self.counts = dict.fromkeys(COUNTS, 0)
        self.rows = self.text_bytes = self.examples = 0

    def add(self, chunk: Any) -> None:
        for name, values in chunk.profile.items():
            self.profile[name].append(values)
        for name, values in chunk.rejected.items():
            self.rejected[name] += values
        for name, value in chunk.counts.items():
            self.counts[name] += int(value)
        self.rows += chunk.rows
        self.text_bytes += chunk.text_bytes
        self.examples += int(chunk.profile["kept"].sum()) if len(chunk.profile["kept"]) else 0

    def finish(self) -> tuple[dict[str, float | int], pl.DataFrame, pl.DataFrame]:
        """(stats, profile, rejected); ValueError when a split holds no example. The statistics come
        from the narrow arrays, and the profile frame is built once: with filtered frame copies per
        split this took the parent up by 151 MB for 1.6 million examples, now 112 MB."""
        columns = {name: np.concatenate(parts) if parts else np.zeros(0, PROFILE_DTYPES[name]) for name, parts in self.profile.items()}
        self.profile = {name: [] for name in self.profile}  # the chunks' arrays, now concatenated
        kept = columns.pop("kept")
        in_split = {split: kept & (columns["split"] == code) for code, split in enumerate(SPLITS)}
        counts = {split: int(mask.sum()) for split, mask in in_split.items()}
        if not counts["eval"] or not counts["train"]:
            reasons = self.rejected["reason"]
            raise ValueError(
                f"the split left {counts['train']} train and {counts['eval']} eval examples from {self.rows} rows"
                + (f" ({len(reasons)} rows had nothing to learn, first: {reasons[0]})" if reasons else "")
                + "; both need at least one: add data or change eval_fraction"
            )
        stats: dict[str, float | int] = {"rows": self.rows, "rows_rejected": len(self.rejected["reason"])}
        for split in SPLITS:
            stats[f"{split}_examples"] = counts[split]
        for name, key in (("length", "tokens"), ("supervised_tokens", "supervised_tokens")):
            for split, mask in in_split.items():
                stats[f"{split}_{key}"] = int(columns[name][mask].sum(dtype=np.int64))
        del in_split
        stats |= self.counts
        lengths = pl.Series(columns["length"][kept])
        stats["length_max"] = int(lengths.max())
        for q in _QUANTILES:
            stats[f"length_p{int(q * 100)}"] = float(lengths.quantile(q, interpolation="nearest"))
        del lengths
        frame = pl.DataFrame({name: columns.pop(name) for name in PROFILE_SCHEMA}).with_columns(
            pl.col("split").replace_strict(dict(enumerate(SPLITS)), return_dtype=pl.String),
            *(pl.col(name).cast(dtype) for name, dtype in PROFILE_SCHEMA.items() if name != "split"))
        return stats, frame, pl.DataFrame(self.rejected, schema=REJECTED_SCHEMA)


class Progress:
    """A line every LOG_EVERY_S seconds: rows done of the total, MB of text, MB/s."""

    def __init__(self, total: int, workers: int, log: Callable[[str], None] | None) -> None:
        self.total, self.workers, self.log = total, workers, log
        self.started = self.last = time.monotonic()
        self.rows = self.text_bytes = 0
        if log:
            log(f"tokenizing {total:,} rows with {workers} worker process{'es' if workers > 1 else ''}")

    def update(self, chunk: Any) -> None:
        self.rows += chunk.rows
        self.text_bytes += chunk.text_bytes
        now = time.monotonic()
        if self.log and now - self.last >= LOG_EVERY_S:
            self.last = now
            self.log(f"tokenized {self.rows:,}/{self.total:,} rows ({100 * self.rows / max(self.total, 1):.0f}%), "
                     f"{self.text_bytes / 2**20:.1f} MB of text, {self.text_bytes / 2**20 / (now - self.started):.2f} MB/s")

    def done(self, totals: "Totals") -> None:
        if self.log:
            seconds = time.monotonic() - self.started
            self.log(f"tokenized {totals.rows:,} rows ({totals.text_bytes / 2**20:.1f} MB of text) into {totals.examples:,} examples "
                     f"in {seconds:.1f} s ({totals.text_bytes / 2**20 / max(seconds, 1e-9):.2f} MB/s, {self.workers} workers)")
