"""The clean_corpus suite (assets/quality/expectations.py) through the GE runner (suites.py).

Importing Great Expectations takes seconds, so one module-scoped fixture pays for it once and the
tests share the outcomes of a few small validation runs (each run after the first is ~0.1 s).
"""

import polars as pl
import pytest

from assets.expectations.suites import CheckOutcome, _short
from assets.quality.cleaning import content_hash
from assets.quality.expectations import CHECKS, run_corpus_checks
from assets.settings.cleaning import CleaningConfig

CONFIG = CleaningConfig(min_chars=10, max_chars=100, min_rows=3)
MIN_CHARS, MAX_CHARS = CONFIG.min_chars, CONFIG.max_chars


def profile(records: list[list[str]], hashes: list[str] | None = None) -> pl.DataFrame:
    """The clean rows' profile as `clean_parquet` returns it, one chat/text record per entry."""
    roles = [["text"] if len(c) == 1 else ["user", "assistant"] * (len(c) // 2) for c in records]
    return pl.DataFrame(
        {
            "content_hash": hashes or [content_hash(r, c) for r, c in zip(roles, records)],
            "n_chars": [sum(len(x) for x in c) for c in records],
            "shortest_target": [min(len(x) for r, x in zip(rs, c) if r in ("assistant", "text")) for rs, c in zip(roles, records)],
        },
        schema={"content_hash": pl.String, "n_chars": pl.Int64, "shortest_target": pl.Int64},
    )


GOOD = [[f"Record number {i} is fine."] for i in range(4)] + [["Question here?", "An answer."]]


def by_name(outcomes: list[CheckOutcome]) -> dict[str, CheckOutcome]:
    return {o.name: o for o in outcomes}


def check(records, config=CONFIG, hashes=None, readable=None, quarantined=0):
    readable = len(records) if readable is None else readable
    return by_name(run_corpus_checks(profile(records, hashes), config, readable, quarantined))


@pytest.fixture(scope="module")
def clean_outcomes() -> list[CheckOutcome]:
    # The first call imports Great Expectations (slow); every other test reuses the import.
    return run_corpus_checks(profile(GOOD), CONFIG, len(GOOD), 0)


def test_clean_profile_passes_every_check(clean_outcomes):
    assert [o.name for o in clean_outcomes] == list(CHECKS)
    for outcome in clean_outcomes:
        assert outcome.passed, outcome
        assert outcome.unexpected_count == 0
        assert outcome.element_count == len(GOOD)
        assert outcome.examples == []
        assert outcome.blocking


def test_each_check_names_its_expectation_and_thresholds(clean_outcomes):
    expected = {
        "texts_present_and_non_empty": "expect_column_values_to_be_between",
        "lengths_in_bounds": "expect_column_values_to_be_between",
        "no_duplicates_left": "expect_column_values_to_be_unique",
        "enough_rows_to_train": "expect_table_row_count_to_be_between",
        "most_rows_readable": "expect_column_values_to_be_in_set",
    }
    outcomes = by_name(clean_outcomes)
    assert {name: o.expectation for name, o in outcomes.items()} == expected
    assert outcomes["lengths_in_bounds"].kwargs == {"min_value": 10, "max_value": 100}
    assert outcomes["enough_rows_to_train"].kwargs["min_value"] == 3
    assert outcomes["most_rows_readable"].kwargs["mostly"] == 0.5
    for outcome in clean_outcomes:
        assert outcome.description.startswith(outcome.expectation + "(")


def test_passing_descriptions_carry_counts(clean_outcomes):
    outcomes = by_name(clean_outcomes)
    assert outcomes["no_duplicates_left"].description.endswith(": 0 of 5 rows fail")
    assert outcomes["enough_rows_to_train"].description == "expect_table_row_count_to_be_between(table, min_value=3): observed 5"
    assert outcomes["enough_rows_to_train"].observed == 5
    assert outcomes["most_rows_readable"].description.endswith("0 of 5 rows (0.0%) unexpected, at most 50.0% allowed")


def test_every_check_has_a_human_description():
    assert all(text.endswith(".") for text in CHECKS.values())


def test_duplicates_fail_no_duplicates_left(clean_outcomes):
    records = GOOD + [GOOD[0], GOOD[0], GOOD[1]]
    outcomes = check(records)
    dup = outcomes["no_duplicates_left"]
    assert not dup.passed
    # GE counts every row whose value is not unique: 3 copies of GOOD[0] and 2 of GOOD[1].
    assert dup.unexpected_count == 5 and dup.element_count == 8
    assert dup.description == "expect_column_values_to_be_unique(content_hash): 5 of 8 rows fail"
    assert set(dup.examples) == {content_hash(["text"], GOOD[0]), content_hash(["text"], GOOD[1])}
    assert all(outcomes[name].passed for name in CHECKS if name != "no_duplicates_left")


def test_too_few_rows_fail_enough_rows_to_train(clean_outcomes):
    outcomes = check(GOOD[:2])
    enough = outcomes["enough_rows_to_train"]
    assert not enough.passed and enough.observed == 2
    assert all(outcomes[name].passed for name in CHECKS if name != "enough_rows_to_train")


def test_exactly_min_rows_passes(clean_outcomes):
    assert check(GOOD[:3])["enough_rows_to_train"].passed


def test_empty_corpus_fails_only_the_row_count(clean_outcomes):
    outcomes = check([])
    assert not outcomes["enough_rows_to_train"].passed
    assert all(o.passed for name, o in outcomes.items() if name != "enough_rows_to_train")


def test_too_long_row_fails_lengths_in_bounds(clean_outcomes):
    lengths = check(GOOD + [["x" * (MAX_CHARS + 1)]])["lengths_in_bounds"]
    assert not lengths.passed
    assert lengths.unexpected_count == 1 and lengths.examples == [MAX_CHARS + 1]
    assert lengths.description == "expect_column_values_to_be_between(n_chars, min_value=10, max_value=100): 1 of 6 rows fail"


def test_length_bounds_are_inclusive_and_come_from_the_domain(clean_outcomes):
    records = GOOD + [["x" * MIN_CHARS], ["y" * MAX_CHARS], ["z" * (MIN_CHARS - 1)]]
    lengths = check(records)["lengths_in_bounds"]
    assert not lengths.passed and lengths.examples == [MIN_CHARS - 1]
    assert check(records, CleaningConfig(min_chars=5, max_chars=100, min_rows=3))["lengths_in_bounds"].passed


def test_empty_target_turn_fails_texts_present_and_non_empty(clean_outcomes):
    outcomes = check(GOOD + [["A question long enough?", ""]], CleaningConfig(min_chars=1, min_rows=3))
    texts = outcomes["texts_present_and_non_empty"]
    assert not texts.passed and texts.unexpected_count == 1 and texts.examples == [0]


def test_null_values_count_as_failures(clean_outcomes):
    frame = profile(GOOD).with_columns(pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("n_chars")).alias("n_chars"))
    lengths = by_name(run_corpus_checks(frame, CONFIG, 5, 0))["lengths_in_bounds"]
    assert not lengths.passed and lengths.unexpected_count == 1


def test_several_failures_are_reported_together(clean_outcomes):
    outcomes = check([GOOD[0], GOOD[0]] + [["x" * 500]])
    assert not outcomes["no_duplicates_left"].passed and not outcomes["lengths_in_bounds"].passed
    assert outcomes["enough_rows_to_train"].passed and outcomes["texts_present_and_non_empty"].passed


def test_examples_are_capped_at_five(clean_outcomes):
    lengths = check(GOOD + [["x" * (MAX_CHARS + i)] for i in range(1, 9)])["lengths_in_bounds"]
    assert lengths.unexpected_count == 8 and len(lengths.examples) == 5


def test_mostly_unreadable_domain_fails_most_rows_readable_with_a_domain_threshold(clean_outcomes):
    half = check(GOOD, readable=10, quarantined=10)["most_rows_readable"]
    assert half.passed  # exactly the default limit of 50%
    worse = check(GOOD, readable=10, quarantined=11)["most_rows_readable"]
    assert not worse.passed and worse.unexpected_count == 11 and worse.examples[0] == "quarantined"
    assert "11 of 21 rows (52.4%) unexpected, at most 50.0% allowed" in worse.description
    lenient = CleaningConfig(min_chars=10, max_chars=100, min_rows=3, max_quarantined_share=1.0)
    assert check(GOOD, lenient, readable=1, quarantined=99)["most_rows_readable"].passed


def test_short_truncates_long_strings_only():
    assert _short("a" * 120) == "a" * 120
    assert _short("a" * 121) == "a" * 120 + "…"
    assert _short(5) == 5 and _short(None) is None
