"""Every row that did not reach training, in one table: why, and where it came from.

Two sources: rows the readers could not use (`raw_corpus` quarantine: broken JSON, bad encoding,
wrong shape) and rows a cleaning filter removed (`clean_corpus` filtered: too short, duplicate).
Counts reconcile: rows read = rows kept + rows quarantined + rows filtered.
"""

from dataclasses import dataclass

import polars as pl

SNIPPET_CHARS = 200
REJECTION_SCHEMA = {"stage": pl.String, "source_file": pl.String, "line": pl.Int64, "reason": pl.String, "snippet": pl.String}


@dataclass(frozen=True)
class Reconciliation:
    rows_in: int
    kept: int
    quarantined: int
    filtered: dict[str, int]  # by filter name

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.kept + self.quarantined + sum(self.filtered.values())

    def describe(self) -> str:
        parts = " + ".join(f"{count} {name}" for name, count in sorted(self.filtered.items()) if count)
        return (f"{self.rows_in} rows in = {self.kept} kept + {self.quarantined} quarantined + "
                f"{sum(self.filtered.values())} filtered" + (f" ({parts})" if parts else ""))


def collect_rejections(quarantine: pl.DataFrame | pl.LazyFrame, filtered: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """One table of rejected rows: stage ('read' or 'clean'), file, line, reason, snippet.
    Lazy inputs (scanned parquet) are read column by column: the filtered rows' full text never
    has to be in memory, only its snippet."""
    read = quarantine.lazy().select(
        pl.lit("read").alias("stage"), "source_file", "line", "reason",
        pl.col("snippet").str.slice(0, SNIPPET_CHARS),
    )
    clean = filtered.lazy().select(
        pl.lit("clean").alias("stage"), "source_file", "line", pl.col("filter").alias("reason"),
        pl.col("contents").list.join(" | ").str.slice(0, SNIPPET_CHARS).alias("snippet"),
    )
    return (pl.concat([read.cast(REJECTION_SCHEMA), clean.cast(REJECTION_SCHEMA)])
            .sort("stage", "source_file", "line", descending=[True, False, False], maintain_order=True)
            .collect(engine="streaming"))


def reconcile(rows_in: int, kept: int, rejections: pl.DataFrame) -> Reconciliation:
    filtered = rejections.filter(pl.col("stage") == "clean")["reason"].value_counts()
    return Reconciliation(
        rows_in=rows_in,
        kept=kept,
        quarantined=int((rejections["stage"] == "read").sum()),
        filtered={row[0]: int(row[1]) for row in filtered.iter_rows()},
    )


def reason_counts(rejections: pl.DataFrame) -> dict[str, int]:
    """Rejections by reason family (text before the first ':'), most common first."""
    families = rejections.select(pl.col("reason").str.split(":").list.first().str.strip_chars().alias("family"))
    counts = families["family"].value_counts(sort=True)
    return {row[0]: int(row[1]) for row in counts.iter_rows()}
