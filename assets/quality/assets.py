"""`clean_corpus` and `quarantined_rows`: cleaned text behind blocking data checks, and every
row that did not make it, with its reason. One step makes both, so the rejections are visible
even when the data checks stop the domain."""

from pathlib import Path

import dagster as dg
import polars as pl

from assets.common.atomic import atomic_directory
from assets.expectations.checks import check_results
from assets.partitions import domain_partitions
from assets.quality.cleaning import CleaningSummary, clean_parquet
from assets.quality.expectations import CHECKS, run_corpus_checks
from assets.quality.rejections import Reconciliation, collect_rejections, reason_counts, reconcile
from assets.settings.cleaning import CleaningConfig
from resources.landing import LandingZone
from resources.lineage import latest_materialization, logical_version, published, reuse_if_unchanged, upstream_path
from resources.storage import ArtifactStore

PREVIEW_ROWS = 50


class CleaningRunConfig(dg.Config, CleaningConfig):
    """Cleaning settings, editable in the launchpad (domain.yaml section `cleaning`)."""


@dg.multi_asset(
    name="clean_corpus",
    partitions_def=domain_partitions,
    specs=[
        dg.AssetSpec(
            "clean_corpus", deps=["raw_corpus"], group_name="quality", kinds={"polars", "great_expectations", "parquet"},
            code_version="2",
            description="Unicode-normalised, control characters removed, whitespace tidied, length- and "
            "repetition-filtered, exactly and near de-duplicated text, cleaned in streamed batches. A Great "
            "Expectations suite blocks the domain's chain when the data is not fit to train on.",
        ),
        dg.AssetSpec(
            "quarantined_rows", deps=["raw_corpus"], group_name="quality", kinds={"polars", "parquet"}, code_version="3",
            description="Every row that did not reach training: file, line, reason, snippet; unreadable rows "
            "(stage 'read') and rows removed by a cleaning filter (stage 'clean').",
        ),
    ],
    check_specs=[
        *[dg.AssetCheckSpec(name, asset="clean_corpus", blocking=True, description=text) for name, text in CHECKS.items()],
        dg.AssetCheckSpec("counts_reconcile", asset="quarantined_rows", blocking=True,
                          description="records counted in the landed files (independently of the readers) = "
                          "rows kept + rows quarantined + rows filtered"),
    ],
)
def clean_corpus(context: dg.AssetExecutionContext, config: CleaningRunConfig, landing: LandingZone, artifacts: ArtifactStore):
    settings = landing.effective_settings(context.partition_key, "cleaning", config)
    versions = {asset: logical_version(context, {"raw_corpus": True}, settings.model_dump(), asset) for asset in ("clean_corpus", "quarantined_rows")}
    reused = {asset: reuse_if_unchanged(context, version, asset) for asset, version in versions.items()}
    if all(reused.values()):
        yield from reused.values()
        return
    raw_dir = upstream_path(context, "raw_corpus")
    clean_dir, rejected_dir = artifacts.new_location(context, "clean_corpus"), artifacts.new_location(context, "quarantined_rows")
    with atomic_directory(clean_dir) as staging:
        result = clean_parquet(raw_dir / "rows.parquet", staging / "rows.parquet", staging / "filtered.parquet", settings)
        rejections = collect_rejections(pl.scan_parquet(raw_dir / "quarantine.parquet"), pl.scan_parquet(staging / "filtered.parquet"),
                                        settings.scrub_pii)
    context.log.info(f"domain {context.partition_key!r}: {result.rows_in} rows cleaned in {result.batches} batch(es), "
                     f"{result.rows_clean} kept")
    with atomic_directory(rejected_dir) as staging:
        rejections.write_parquet(staging / "rejections.parquet")
    quarantined = int((rejections["stage"] == "read").sum())
    outcomes = run_corpus_checks(result.profile, settings, rows_readable=result.rows_in, rows_quarantined=quarantined)
    yield published(_clean_metadata(clean_dir, result, settings), versions["clean_corpus"],
                    check_results(context, "clean_corpus", outcomes), "clean_corpus")

    totals = _reconcile(context, result.rows_in + quarantined, result.rows_clean, rejections)
    balance = dg.AssetCheckResult(asset_key="quarantined_rows", check_name="counts_reconcile", passed=totals.balanced,
                                  severity=dg.AssetCheckSeverity.ERROR, description=totals.describe())
    yield published(_rejections_metadata(rejected_dir, rejections, totals), versions["quarantined_rows"], [balance], "quarantined_rows")


def _reconcile(context: dg.AssetExecutionContext, rows_read: int, kept: int, rejections: pl.DataFrame) -> Reconciliation:
    """Balance against the records raw_corpus counted in the landed files without its readers."""
    raw = latest_materialization(context, "raw_corpus", context.partition_key).metadata
    if "records_counted" not in raw:  # made by a raw_corpus older than the count
        return reconcile(rows_read, kept, rejections, counted=False)
    return reconcile(raw["records_counted"].value, kept, rejections, mismatches=raw["count_mismatches"].value)


def _rejections_metadata(location: Path, rejections: pl.DataFrame, totals: Reconciliation) -> dict:
    preview = rejections.head(PREVIEW_ROWS)
    return {
        "path": dg.MetadataValue.path(str(location)),
        "rows_rejected": rejections.height,
        "rows_quarantined": totals.quarantined,
        "rows_filtered": sum(totals.filtered.values()),
        "reconciliation": totals.describe(),
        "by_reason": dg.MetadataValue.json(reason_counts(rejections)),
        "preview": dg.MetadataValue.table(
            records=[dg.TableRecord(row) for row in preview.iter_rows(named=True)],
            schema=dg.TableSchema(columns=[dg.TableColumn(name, "int" if name == "line" else "string") for name in preview.columns]),
        ),
    }


def _clean_metadata(location, result: CleaningSummary, settings: CleaningConfig) -> dict:
    return {
        "path": dg.MetadataValue.path(str(location)),
        "rows_in": result.rows_in,
        "rows_clean": result.rows_clean,
        "rows_filtered": sum(result.counts.values()),
        **{f"filtered_{name}": count for name, count in result.counts.items()},
        "characters": result.characters,
        "pii_replaced": dg.MetadataValue.json(result.pii) if settings.scrub_pii else "scrubbing off",
        "languages": dg.MetadataValue.json(result.languages) if settings.languages else "not identified",
        "settings": dg.MetadataValue.json(settings.model_dump()),
    }
