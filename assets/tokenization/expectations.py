"""The `training_dataset` suite: checks on what training will actually see, per example.

Runs over the tokenizer's per-example profile (split, length, supervised tokens, truncated) with
thresholds from the domain's tokenization settings. Records that yield nothing to learn from are
quarantined with their reason; past a share (max_unsupervised_share) they stop the domain, because
then the data or the template is wrong. Truncation only warns, because a few cut replies are normal
and the share is what tells people max_seq_len is too small.
"""

import polars as pl

from assets.expectations.suites import CheckOutcome, Expect, validate
from assets.settings.tokenization import TokenizationConfig

CHECKS: dict[str, tuple[str, bool]] = {  # name -> (what passing means, blocking)
    "examples_supervised": ("The share of records left without a supervised (assistant/text) token, "
                            "quarantined with their reason, stays at or below max_unsupervised_share.", True),
    "truncation_below_limit": ("The share of truncated examples stays at or below max_truncated_share.", False),
    "lengths_within_max_seq_len": ("No example is longer than max_seq_len tokens.", True),
}


def training_dataset_suite(config: TokenizationConfig) -> list[Expect]:
    import great_expectations.expectations as gxe

    expectations = {
        "examples_supervised": gxe.ExpectColumnValuesToBeBetween(
            column="supervised_tokens", min_value=1, mostly=1.0 - config.max_unsupervised_share),
        "truncation_below_limit": gxe.ExpectColumnValuesToBeInSet(
            column="truncated", value_set=[False], mostly=1.0 - config.max_truncated_share),
        "lengths_within_max_seq_len": gxe.ExpectColumnValuesToBeBetween(column="length", max_value=config.max_seq_len),
    }
    return [Expect(name, text, expectations[name], blocking) for name, (text, blocking) in CHECKS.items()]


def run_dataset_checks(profile: pl.DataFrame, config: TokenizationConfig) -> list[CheckOutcome]:
    # Only the checked columns go to Great Expectations (a pandas copy): the split, one Python string
    # per example there, is not checked, and a domain can hold millions of examples.
    return validate(profile.select("supervised_tokens", "truncated", "length"), "training_dataset", training_dataset_suite(config))
