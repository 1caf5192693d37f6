"""The training_dataset suite (assets/tokenization/expectations.py) on per-example profiles."""

import polars as pl
import pytest

from assets.settings.tokenization import TokenizationConfig
from assets.tokenization.expectations import CHECKS, run_dataset_checks

CONFIG = TokenizationConfig(max_seq_len=64, max_truncated_share=0.25)


def profile(lengths, supervised, truncated) -> pl.DataFrame:
    return pl.DataFrame({"split": ["train"] * len(lengths), "length": lengths, "supervised_tokens": supervised,
                         "truncated": truncated}, schema={"split": pl.String, "length": pl.Int64,
                                                          "supervised_tokens": pl.Int64, "truncated": pl.Boolean})


def outcomes(frame, config=CONFIG):
    return {o.name: o for o in run_dataset_checks(frame, config)}


@pytest.fixture(scope="module")
def healthy():
    return outcomes(profile([10, 20, 64, 30], [5, 1, 9, 3], [False, False, True, False]))


def test_a_healthy_dataset_passes_and_names_each_expectation(healthy):
    assert list(healthy) == list(CHECKS)
    assert all(o.passed for o in healthy.values())
    assert healthy["truncation_below_limit"].kwargs["mostly"] == 0.75
    assert healthy["lengths_within_max_seq_len"].kwargs == {"max_value": 64}
    assert not healthy["truncation_below_limit"].blocking and healthy["examples_supervised"].blocking


def test_rows_without_supervised_tokens_over_the_share_fail_the_blocking_check(healthy):
    result = outcomes(profile([10, 20], [5, 0], [False, False]))["examples_supervised"]
    assert not result.passed and result.blocking and result.unexpected_count == 1 and result.examples == [0]
    assert result.kwargs["mostly"] == 0.95


def test_a_few_rows_without_supervised_tokens_under_the_share_pass():
    # 1 of 40 rows (2.5%) had nothing to learn: within the default 5%, the domain goes on.
    frame = profile([10] * 40, [3] * 39 + [0], [False] * 40)
    assert outcomes(frame)["examples_supervised"].passed
    strict = TokenizationConfig(max_seq_len=64, max_unsupervised_share=0.0)
    assert not outcomes(frame, strict)["examples_supervised"].passed


def test_truncation_share_over_the_domain_limit_warns(healthy):
    result = outcomes(profile([64, 64, 10], [1, 1, 1], [True, True, False]))["truncation_below_limit"]
    assert not result.passed and not result.blocking
    assert "2 of 3 rows (66.7%) unexpected, at most 25.0% allowed" in result.description
    lenient = TokenizationConfig(max_seq_len=64, max_truncated_share=0.7)
    assert outcomes(profile([64, 64, 10], [1, 1, 1], [True, True, False]), lenient)["truncation_below_limit"].passed


def test_an_example_longer_than_max_seq_len_fails(healthy):
    result = outcomes(profile([65, 10], [1, 1], [False, False]))["lengths_within_max_seq_len"]
    assert not result.passed and result.examples == [65]
