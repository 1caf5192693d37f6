"""Every row that did not reach training, in one table: why, and where it came from.

Two sources: rows the readers could not use (`raw_corpus` quarantine: broken JSON, bad encoding,
wrong shape) and rows a cleaning filter removed (`clean_corpus` filtered: too short, duplicate).
Counts reconcile: the records raw_corpus counted in the landed files without its readers
(`records_counted`, assets/corpora/counting.py) = rows kept + rows quarantined + rows filtered, so
a reader or a filter that loses rows breaks the balance.
"""

from dataclasses import dataclass, field

import polars as pl

from assets.common.personal_data import scrub_report_text

SNIPPET_CHARS = 200
REJECTION_SCHEMA = {"stage": pl.String, "source_file": pl.String, "line": pl.Int64, "reason": pl.String, "snippet": pl.String}


@dataclass(frozen=True)
class Reconciliation:
    rows_in: int  # records counted in the landed files (or rows read, when `counted` is False)
    kept: int
    quarantined: int
    filtered: dict[str, int]  # by filter name
    counted: bool = True  # rows_in was counted independently of the readers
    mismatches: dict[str, str] = field(default_factory=dict)  # file -> how its count differs

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.kept + self.quarantined + sum(self.filtered.values())

    def describe(self) -> str:
        parts = " + ".join(f"{count} {name}" for name, count in sorted(self.filtered.items()) if count)
        source = ("records counted in the landed files, independently of the readers" if self.counted
                  else "rows read (raw_corpus predates the independent count; re-materialize it)")
        text = (f"{self.rows_in} rows in = {self.kept} kept + {self.quarantined} quarantined + "
                f"{sum(self.filtered.values())} filtered" + (f" ({parts})" if parts else "") + f"; rows in: {source}")
        if not self.balanced:
            files = "; ".join(f"{name}: {how}" for name, how in sorted(self.mismatches.items())[:5])
            text += f"; {self.kept + self.quarantined + sum(self.filtered.values()) - self.rows_in:+d} rows unaccounted"
            text += f" ({files})" if files else ""
        return text


def collect_rejections(quarantine: pl.DataFrame | pl.LazyFrame, filtered: pl.DataFrame | pl.LazyFrame,
                       scrub_pii: bool = False) -> pl.DataFrame:
    """One table of rejected rows: stage ('read' or 'clean'), file, line, reason, snippet.
    Lazy inputs (scanned parquet) are read column by column: the filtered rows' full text never
    has to be in memory, only its snippet. With `scrub_pii`, reasons and snippets have personal
    data replaced (they reach the event log through the preview)."""
    read = quarantine.lazy().select(
        pl.lit("read").alias("stage"), "source_file", "line", "reason",
        pl.col("snippet").str.slice(0, SNIPPET_CHARS),
    )
    clean = filtered.lazy().select(
        pl.lit("clean").alias("stage"), "source_file", "line", pl.col("filter").alias("reason"),
        pl.col("contents").list.join(" | ").str.slice(0, SNIPPET_CHARS).alias("snippet"),
    )
    table = pl.concat([read.cast(REJECTION_SCHEMA), clean.cast(REJECTION_SCHEMA)])
    if scrub_pii:
        table = table.with_columns(scrub_report_text("reason"), scrub_report_text("snippet", SNIPPET_CHARS))
    return (table.sort("stage", "source_file", "line", descending=[True, False, False], maintain_order=True)
            .collect(engine="streaming"))


def reconcile(rows_in: int, kept: int, rejections: pl.DataFrame, counted: bool = True,
              mismatches: dict[str, str] | None = None) -> Reconciliation:
    """`rows_in`: the records counted in the landed files (raw_corpus's `records_counted`), never a
    sum of the numbers being checked; `mismatches`: raw_corpus's `count_mismatches`, for the report."""
    filtered = rejections.filter(pl.col("stage") == "clean")["reason"].value_counts()
    return Reconciliation(
        rows_in=rows_in,
        kept=kept,
        quarantined=int((rejections["stage"] == "read").sum()),
        filtered={row[0]: int(row[1]) for row in filtered.iter_rows()},
        counted=counted,
        mismatches=mismatches or {},
    )


def reason_counts(rejections: pl.DataFrame) -> dict[str, int]:
    """Rejections by reason family (text before the first ':'), most common first."""
    families = rejections.select(pl.col("reason").str.split(":").list.first().str.strip_chars().alias("family"))
    counts = families["family"].value_counts(sort=True)
    return {row[0]: int(row[1]) for row in counts.iter_rows()}
