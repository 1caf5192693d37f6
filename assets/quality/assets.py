"""`clean_corpus`: normalised, filtered, de-duplicated text, stopped by blocking data checks."""

import dagster as dg
import polars as pl

from assets.common.atomic import atomic_directory
from assets.common.domain_settings import effective_config
from assets.partitions import domain_partitions
from assets.quality.cleaning import CleaningConfig, clean_corpus as clean
from assets.quality.expectations import CHECKS, run_corpus_checks
from resources.landing import LandingZone
from resources.lineage import logical_version, published, reuse_if_unchanged, upstream_path
from resources.storage import ArtifactStore


class CleaningRunConfig(dg.Config, CleaningConfig):
    """Cleaning settings, editable in the launchpad (domain.yaml section `cleaning`)."""


@dg.asset(
    partitions_def=domain_partitions,
    deps=["raw_corpus"],
    group_name="quality",
    kinds={"polars", "great_expectations", "parquet"},
    code_version="1",
    check_specs=[dg.AssetCheckSpec(name, asset="clean_corpus", blocking=True, description=text) for name, text in CHECKS.items()],
)
def clean_corpus(context: dg.AssetExecutionContext, config: CleaningRunConfig, landing: LandingZone, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """Unicode-normalised, control characters removed, whitespace tidied, length-bounded and exactly
    de-duplicated. Filtered rows are kept in `filtered.parquet` with the filter's name. Great
    Expectations checks block the domain's chain when the data is not fit to train on."""
    settings = effective_config(CleaningConfig, config, landing.domain_settings(context.partition_key).get("cleaning", {}))
    version = logical_version(context, {"raw_corpus": True}, settings.model_dump())
    if reused := reuse_if_unchanged(context, version):
        return reused
    raw = pl.read_parquet(upstream_path(context, "raw_corpus") / "rows.parquet")
    result = clean(raw, settings)
    location = artifacts.new_location(context, "clean_corpus")
    with atomic_directory(location) as staging:
        result.clean.write_parquet(staging / "rows.parquet")
        result.filtered.write_parquet(staging / "filtered.parquet")
    checks = []
    for outcome in run_corpus_checks(result.clean, settings.min_chars, settings.max_chars, settings.min_rows):
        if not outcome.passed:
            context.log.error(f"domain {context.partition_key!r}: check {outcome.name} failed: {outcome.description}")
        checks.append(
            dg.AssetCheckResult(
                check_name=outcome.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=outcome.description,
                metadata={
                    "expectation": outcome.expectation,
                    "unexpected_rows": outcome.unexpected_count,
                    "rows": outcome.element_count,
                    "examples": dg.MetadataValue.json(outcome.examples),
                },
            )
        )
    metadata = {
        "path": dg.MetadataValue.path(str(location)),
        "rows_in": raw.height,
        "rows_clean": result.clean.height,
        "rows_filtered": result.filtered.height,
        **{f"filtered_{name}": count for name, count in result.counts.items()},
        "characters": int(result.clean["n_chars"].sum() or 0),
        "settings": dg.MetadataValue.json(settings.model_dump()),
    }
    return published(metadata, version, checks)
