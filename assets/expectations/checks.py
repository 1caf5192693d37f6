"""Great Expectations outcomes as Dagster asset check results, shared by every stage's wrapper."""

import dagster as dg

from assets.expectations.suites import CheckOutcome


def check_results(context: dg.AssetExecutionContext, asset: str, outcomes: list[CheckOutcome]) -> list[dg.AssetCheckResult]:
    """One result per outcome, with what the UI should show: the expectation, its thresholds, how
    many rows it looked at, how many failed and a few of them. Failures are logged with the domain."""
    results = []
    for outcome in outcomes:
        if not outcome.passed:
            log = context.log.error if outcome.blocking else context.log.warning
            log(f"domain {context.partition_key!r}: check {outcome.name} failed: {outcome.description}")
        metadata = {
            "expectation": outcome.expectation,
            "thresholds": dg.MetadataValue.json(outcome.kwargs),
            "rows": outcome.element_count,
            "unexpected_rows": outcome.unexpected_count,
            "examples": dg.MetadataValue.json(outcome.examples),
        }
        if outcome.observed is not None:
            scalar = isinstance(outcome.observed, (bool, int, float, str))
            metadata["observed"] = outcome.observed if scalar else dg.MetadataValue.json(outcome.observed)
        results.append(dg.AssetCheckResult(
            asset_key=asset, check_name=outcome.name, passed=outcome.passed, description=outcome.description,
            severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN, metadata=metadata,
        ))
    return results
