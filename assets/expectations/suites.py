"""Great Expectations suites as code, and the one runner every stage's suite goes through.

A stage declares its suite as a list of `Expect`: a Dagster check name, a sentence for people, and a
Great Expectations 1.x expectation whose thresholds come from the domain's settings. `validate` runs
the whole suite in-process (an ephemeral context and a pandas batch; not `dagster-ge`, which pins
GE < 1.0) over a small profile table (counts, lengths, hashes; never the text itself, so a large
domain does not have to fit in memory twice) and returns one outcome per check: passed or not, which
expectation decided it, how many rows it looked at, how many failed, and a few failing values.
"""

import os
from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass(frozen=True)
class Expect:
    check: str  # the Dagster asset check this expectation decides
    description: str  # what passing means, in one sentence
    expectation: Any  # a great_expectations.expectations.Expectation
    blocking: bool = True  # a failure stops the domain's chain (else it warns)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    expectation: str  # the Great Expectations expectation type that decided it
    description: str  # one line a person reads in the UI: which expectation, how many rows
    blocking: bool = True
    unexpected_count: int = 0
    element_count: int = 0
    examples: list[Any] = field(default_factory=list)
    observed: Any = None  # table-level expectations report a value instead of failing rows
    kwargs: dict[str, Any] = field(default_factory=dict)  # the thresholds it ran with


def validate(profile: pl.DataFrame, suite_name: str, suite: list[Expect]) -> list[CheckOutcome]:
    """Run `suite` over `profile` as one Great Expectations suite; outcomes in suite order."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("loraline")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("all_rows")
        .get_batch(batch_parameters={"dataframe": profile.to_pandas()})
    )
    gx_suite = gx.ExpectationSuite(name=suite_name)
    for item in suite:
        item.expectation.meta = {"check": item.check}
        gx_suite.add_expectation(item.expectation)
    by_check = {result.expectation_config.meta["check"]: result for result in batch.validate(gx_suite).results}
    return [_outcome(item, by_check[item.check], profile.height) for item in suite]


def _outcome(item: Expect, result: Any, rows: int) -> CheckOutcome:
    details = result.result or {}
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id") and v is not None}
    unexpected = int(details.get("unexpected_count") or 0)
    # GE skips nulls for most column expectations; a null where a value must be is a failure here.
    unexpected += int(details.get("missing_count") or 0) if "mostly" not in kwargs else 0
    passed = bool(result.success) and ("mostly" in kwargs or unexpected == 0)
    if "observed_value" in details:
        summary = f"observed {_short(details['observed_value'])}"
    elif "mostly" in kwargs:
        share = unexpected / max(rows, 1)
        summary = f"{unexpected} of {rows} rows ({share:.1%}) unexpected, at most {1 - kwargs['mostly']:.1%} allowed"
    else:
        summary = f"{unexpected} of {rows} rows fail"
    bounds = ", ".join(f"{k}={_number(v)}" for k, v in kwargs.items() if k != "mostly")
    return CheckOutcome(
        name=item.check,
        passed=passed,
        expectation=config.type,
        description=f"{config.type}({config.kwargs.get('column', 'table')}{', ' + bounds if bounds else ''}): {summary}",
        blocking=item.blocking,
        unexpected_count=unexpected,
        element_count=rows,
        examples=[_short(v) for v in (details.get("partial_unexpected_list") or [])[:5]],
        observed=details.get("observed_value"),
        kwargs=kwargs,
    )


def _number(value: Any) -> Any:
    """GE stores bounds as floats; 100.0 reads better as 100."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _short(value: Any) -> Any:
    return value[:120] + "…" if isinstance(value, str) and len(value) > 120 else value
