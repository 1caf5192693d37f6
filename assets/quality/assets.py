"""`clean_corpus` and `quarantined_rows`: cleaned text behind blocking data checks, and every
row that did not make it, with its reason. One step makes both, so the rejections are visible
even when the data checks stop the domain."""

import dagster as dg
import polars as pl

from assets.common.atomic import atomic_directory
from assets.partitions import domain_partitions
from assets.quality.cleaning import CleaningConfig, clean_corpus as clean
from assets.quality.expectations import CHECKS, run_corpus_checks
from assets.quality.rejections import collect_rejections, reason_counts, reconcile
from resources.landing import LandingZone
from resources.lineage import logical_version, published, reuse_if_unchanged, upstream_path
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
            code_version="1",
            description="Unicode-normalised, control characters removed, whitespace tidied, length-bounded and "
            "exactly de-duplicated text. Great Expectations checks block the domain's chain when the data is "
            "not fit to train on.",
        ),
        dg.AssetSpec(
            "quarantined_rows", deps=["raw_corpus"], group_name="quality", kinds={"polars", "parquet"}, code_version="1",
            description="Every row that did not reach training: file, line, reason, snippet; unreadable rows "
            "(stage 'read') and rows removed by a cleaning filter (stage 'clean').",
        ),
    ],
    check_specs=[
        *[dg.AssetCheckSpec(name, asset="clean_corpus", blocking=True, description=text) for name, text in CHECKS.items()],
        dg.AssetCheckSpec("counts_reconcile", asset="quarantined_rows", blocking=True,
                          description="rows read = rows kept + rows quarantined + rows filtered"),
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
    raw = pl.read_parquet(raw_dir / "rows.parquet")
    result = clean(raw, settings)
    rejections = collect_rejections(pl.read_parquet(raw_dir / "quarantine.parquet"), result.filtered)
    clean_dir, rejected_dir = artifacts.new_location(context, "clean_corpus"), artifacts.new_location(context, "quarantined_rows")
    with atomic_directory(clean_dir) as staging:
        result.clean.write_parquet(staging / "rows.parquet")
        result.filtered.write_parquet(staging / "filtered.parquet")
    with atomic_directory(rejected_dir) as staging:
        rejections.write_parquet(staging / "rejections.parquet")
    yield published(_clean_metadata(clean_dir, raw, result, settings), versions["clean_corpus"], _data_checks(context, result, settings), "clean_corpus")

    totals = reconcile(raw.height + int((rejections["stage"] == "read").sum()), result.clean.height, rejections)
    balance = dg.AssetCheckResult(asset_key="quarantined_rows", check_name="counts_reconcile", passed=totals.balanced,
                                  severity=dg.AssetCheckSeverity.ERROR, description=totals.describe())
    preview = rejections.head(PREVIEW_ROWS)
    metadata = {
        "path": dg.MetadataValue.path(str(rejected_dir)),
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
    yield published(metadata, versions["quarantined_rows"], [balance], "quarantined_rows")


def _data_checks(context: dg.AssetExecutionContext, result, settings: CleaningConfig) -> list[dg.AssetCheckResult]:
    checks = []
    for outcome in run_corpus_checks(result.clean, settings.min_chars, settings.max_chars, settings.min_rows):
        if not outcome.passed:
            context.log.error(f"domain {context.partition_key!r}: check {outcome.name} failed: {outcome.description}")
        checks.append(
            dg.AssetCheckResult(
                asset_key="clean_corpus",
                check_name=outcome.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=outcome.description,
                metadata={"expectation": outcome.expectation, "unexpected_rows": outcome.unexpected_count,
                          "rows": outcome.element_count, "examples": dg.MetadataValue.json(outcome.examples)},
            )
        )
    return checks


def _clean_metadata(location, raw: pl.DataFrame, result, settings: CleaningConfig) -> dict:
    return {
        "path": dg.MetadataValue.path(str(location)),
        "rows_in": raw.height,
        "rows_clean": result.clean.height,
        "rows_filtered": result.filtered.height,
        **{f"filtered_{name}": count for name, count in result.counts.items()},
        "characters": int(result.clean["n_chars"].sum() or 0),
        "pii_replaced": dg.MetadataValue.json(result.pii) if settings.scrub_pii else "scrubbing off",
        "languages": dg.MetadataValue.json(result.languages) if settings.languages else "not identified",
        "settings": dg.MetadataValue.json(settings.model_dump()),
    }
