"""Scrubbing personal data and credentials out of training text, counted by kind.

The patterns (assets/common/personal_data.py) are shared with the reports: raw_corpus scrubs its
quarantine snippets with them, so `scrub_pii` keeps personal data out of the event log as well.
Matches are replaced by a typed placeholder (`<EMAIL>`, ...), so the model still sees that
something was there without learning the value.
"""

import polars as pl

from assets.common.personal_data import PATTERNS


def scrub(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Replace personal data in `contents`; returns the frame and the number of matches per kind."""
    counts = {}
    for kind, (pattern, replacement) in PATTERNS.items():
        counts[kind] = int(frame.select(pl.col("contents").list.eval(pl.element().str.count_matches(pattern)).list.sum().sum()).item() or 0)
        if counts[kind]:
            frame = frame.with_columns(pl.col("contents").list.eval(pl.element().str.replace_all(pattern, replacement)))
    return frame, counts
