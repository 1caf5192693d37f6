"""Corpus cleaning (assets/quality/cleaning.py): normalisation, filters, de-duplication, accounting."""

import hashlib

import polars as pl
import pytest
from pydantic import ValidationError

from assets.corpora.readers import ROW_SCHEMA
from assets.quality.cleaning import CleaningResult, clean_corpus, content_hash, record_key
from assets.settings.cleaning import FILTERS, CleaningConfig

LONG_ENOUGH = "This sentence is comfortably long enough."  # > 20 characters, the default min_chars


def row(contents, *, kind=None, roles=None, source_file="a.jsonl", line=1):
    if isinstance(contents, str):
        contents = [contents]
    if roles is None:
        roles = ["text"] if len(contents) == 1 else ["user", "assistant"] * (len(contents) // 2)
    if kind is None:
        kind = "text" if roles == ["text"] else "chat"
    return {"source_file": source_file, "line": line, "kind": kind, "roles": roles, "contents": contents}


def frame(rows):
    return pl.DataFrame({name: [r[name] for r in rows] for name in ROW_SCHEMA}, schema=ROW_SCHEMA)


def clean(rows, **config):
    # These tests build near-identical synthetic rows on purpose; near-duplicates have their own tests.
    config.setdefault("near_dedup", False)
    return clean_corpus(frame(rows), CleaningConfig(**config))


def cleaned_text(text, **config):
    """The single content of one text row after cleaning (min_chars 1 unless given)."""
    config.setdefault("min_chars", 1)
    result = clean([row(text)], **config)
    assert len(result.clean) == 1, result.filtered
    return result.clean["contents"][0].to_list()[0]


def assert_reconciles(raw_rows, result: CleaningResult):
    assert len(result.clean) + len(result.filtered) == len(raw_rows)
    assert set(result.counts) == set(FILTERS)
    assert sum(result.counts.values()) == len(result.filtered)
    for name in FILTERS:
        assert result.counts[name] == (result.filtered["filter"] == name).sum()


# --- normalisation ------------------------------------------------------------------------------

def test_nfc_composes_but_keeps_compatibility_forms():
    text = "cafe\u0301 \ufb01le \uff11\uff12\uff13"  # e + combining acute, "fi" ligature, full-width 123
    out = cleaned_text(text, unicode_form="NFC")
    assert out == "caf\u00e9 \ufb01le \uff11\uff12\uff13"


def test_nfkc_also_folds_compatibility_forms():
    text = "cafe\u0301 \ufb01le \uff11\uff12\uff13"
    assert cleaned_text(text, unicode_form="NFKC") == "caf\u00e9 file 123"


def test_nfc_is_the_default():
    assert CleaningConfig().unicode_form == "NFC"
    assert cleaned_text("\ufb01") == "\ufb01"


def test_control_characters_removed_but_newline_and_tab_kept():
    text = "a\x00b\x07c\x08d\x0be\x0cf\x1bg\x1fh\x7fi\x85j\x9fk\tl\nm"
    assert cleaned_text(text) == "abcdefghij" + "k\tl\nm"


def test_crlf_and_lone_cr_become_lf():
    assert cleaned_text("one\r\ntwo\rthree\nfour") == "one\ntwo\nthree\nfour"


def test_trailing_spaces_and_tabs_removed_on_every_line():
    assert cleaned_text("first  \nsecond\t\t\n  third keeps its indent \t ") == "first\nsecond\n  third keeps its indent"


def test_three_or_more_newlines_collapse_to_one_blank_line():
    assert cleaned_text("a\n\nb\n\n\nc\n\n\n\n\n\nd") == "a\n\nb\n\nc\n\nd"


def test_blank_lines_made_of_spaces_also_collapse():
    assert cleaned_text("a\n  \n\t\n \nb") == "a\n\nb"


def test_crlf_blank_lines_collapse():
    assert cleaned_text("a\r\n\r\n\r\n\r\nb") == "a\n\nb"


def test_leading_and_trailing_whitespace_stripped():
    assert cleaned_text("\n\n  \t hello world \n\n ") == "hello world"


def test_every_turn_is_normalised():
    result = clean([row(["  Question?\r\n", "Answer\x00 here.   "], line=1)], min_chars=1)
    assert result.clean["contents"][0].to_list() == ["Question?", "Answer here."]


def test_n_chars_counts_all_turns_after_cleaning():
    result = clean([row(["  abc  ", "de\x00f"])], min_chars=1)
    assert result.clean["n_chars"].to_list() == [6]


def test_output_schema():
    result = clean([row(LONG_ENOUGH), row("short", line=2)])
    expected = dict(ROW_SCHEMA) | {"content_hash": pl.String, "n_chars": pl.Int64}
    assert dict(result.clean.schema) == expected | {"split_key": pl.String}
    assert dict(result.filtered.schema) == expected | {"split_key": pl.String, "filter": pl.String}


def test_empty_input_gives_empty_outputs_with_schema():
    result = clean([])
    assert len(result.clean) == 0 and len(result.filtered) == 0
    assert "content_hash" in result.clean.columns and "filter" in result.filtered.columns
    assert result.counts == {name: 0 for name in FILTERS}


def test_input_frame_is_not_modified():
    raw = frame([row("  " + LONG_ENOUGH + "  ")])
    before = raw.clone()
    clean_corpus(raw, CleaningConfig())
    assert raw.equals(before)


# --- filters ------------------------------------------------------------------------------------

def test_assistant_reply_of_only_control_chars_is_empty_after_cleaning():
    rows = [row(["A perfectly reasonable question, long enough?", "\x00\x01\x7f  "])]
    result = clean(rows)
    assert len(result.clean) == 0
    assert result.filtered["filter"].to_list() == ["empty_after_cleaning"]
    assert result.counts["empty_after_cleaning"] == 1
    assert_reconciles(rows, result)


def test_empty_plain_text_is_empty_after_cleaning():
    rows = [row(" \n\t\x00 \r\n")]
    result = clean(rows)
    assert result.filtered["filter"].to_list() == ["empty_after_cleaning"]
    assert result.filtered["n_chars"].to_list() == [0]


def test_empty_user_turn_is_not_a_reason_to_drop():
    result = clean([row(["", LONG_ENOUGH])])
    assert len(result.clean) == 1


def test_empty_assistant_in_a_later_turn_is_dropped():
    rows = [row(["Question one is here?", "Answer one is here.", "Question two?", " \x00 "])]
    assert clean(rows).filtered["filter"].to_list() == ["empty_after_cleaning"]


def test_empty_target_wins_over_too_short():
    result = clean([row(["hi", ""])])  # 2 chars: also too short, but empty is reported first
    assert result.filtered["filter"].to_list() == ["empty_after_cleaning"]


def test_too_short_and_too_long_with_inclusive_bounds():
    rows = [
        row("x" * 9, line=1),
        row("x" * 10, line=2),  # == min_chars: kept
        row("y" * 15, line=3),
        row("z" * 20, line=4),  # == max_chars: kept
        row("z" * 21, line=5),
    ]
    result = clean(rows, min_chars=10, max_chars=20)
    assert result.clean["line"].to_list() == [2, 3, 4]
    assert dict(zip(result.filtered["line"], result.filtered["filter"])) == {1: "too_short", 5: "too_long"}
    assert result.counts == {"empty_after_cleaning": 0,
                             "too_short": 1, "too_long": 1, "repetitive": 0, "wrong_language": 0, "exact_duplicate": 0, "near_duplicate": 0}
    assert_reconciles(rows, result)


def test_length_is_measured_after_cleaning():
    # 25 raw characters, 15 after stripping and control-character removal.
    rows = [row("     " + "a\x00" * 5 + "bbbbbbbbbb" + "     ")]
    result = clean(rows, min_chars=16)
    assert result.filtered["filter"].to_list() == ["too_short"]
    assert result.filtered["n_chars"].to_list() == [15]


def test_length_is_measured_in_characters_not_bytes():
    text = "日本語" * 4  # 12 characters, 36 UTF-8 bytes
    assert len(clean([row(text)], min_chars=12, max_chars=12).clean) == 1


def test_length_counts_all_turns_together():
    rows = [row(["x" * 8, "y" * 8])]  # 16 chars in all, each turn below 10
    assert len(clean(rows, min_chars=10, max_chars=16).clean) == 1
    assert clean(rows, min_chars=17).filtered["filter"].to_list() == ["too_short"]


# --- duplicates ---------------------------------------------------------------------------------

def test_exact_duplicates_keep_the_first_by_source_file_and_line():
    rows = [
        row(LONG_ENOUGH, source_file="b.jsonl", line=1),
        row(LONG_ENOUGH, source_file="a.jsonl", line=10),
        row(LONG_ENOUGH, source_file="a.jsonl", line=2),  # first in landing order (line 2 < line 10)
        row("A different record that is long enough.", source_file="a.jsonl", line=3),
    ]
    result = clean(rows)
    assert list(zip(result.clean["source_file"], result.clean["line"])) == [("a.jsonl", 2), ("a.jsonl", 3)]
    assert list(zip(result.filtered["source_file"], result.filtered["line"], result.filtered["filter"])) == [
        ("a.jsonl", 10, "exact_duplicate"),
        ("b.jsonl", 1, "exact_duplicate"),
    ]
    assert result.counts["exact_duplicate"] == 2
    assert_reconciles(rows, result)


def test_duplicates_are_judged_after_normalisation():
    rows = [row(LONG_ENOUGH + "   ", line=1), row("  " + LONG_ENOUGH + "\r\n", line=2), row(LONG_ENOUGH + "\x00", line=3)]
    result = clean(rows)
    assert result.clean["line"].to_list() == [1]
    assert result.counts["exact_duplicate"] == 2


def test_nfkc_can_make_duplicates_that_nfc_keeps_apart():
    rows = [row("\ufb01le names are long enough", line=1), row("file names are long enough", line=2)]
    assert len(clean(rows, unicode_form="NFC").clean) == 2
    assert clean(rows, unicode_form="NFKC").counts["exact_duplicate"] == 1


def test_same_contents_with_different_roles_are_not_duplicates():
    a = row(["Question that is long enough", "Answer that is long enough"], roles=["user", "assistant"], line=1)
    b = row(["Question that is long enough", "Answer that is long enough"], roles=["system", "assistant"], line=2)
    assert len(clean([a, b]).clean) == 2


def test_turn_boundaries_matter_for_duplicates():
    a = row(["ab cd ef gh ij kl", "mn op qr st"], line=1)
    b = row(["ab cd ef gh ij", "kl mn op qr st"], line=2)
    assert len(clean([a, b]).clean) == 2


def test_rows_filtered_for_length_are_not_counted_as_duplicates():
    rows = [row("tiny", line=1), row("tiny", line=2), row(LONG_ENOUGH, line=3)]
    result = clean(rows)
    assert result.counts == {"empty_after_cleaning": 0,
                             "too_short": 2, "too_long": 0, "repetitive": 0, "wrong_language": 0, "exact_duplicate": 0, "near_duplicate": 0}
    assert_reconciles(rows, result)


def test_deduplicate_false_keeps_duplicates():
    rows = [row(LONG_ENOUGH, line=1), row(LONG_ENOUGH, line=2), row(LONG_ENOUGH, line=3)]
    result = clean(rows, deduplicate=False)
    assert result.clean["line"].to_list() == [1, 2, 3]
    assert result.counts["exact_duplicate"] == 0
    assert len(set(result.clean["content_hash"])) == 1
    assert_reconciles(rows, result)


def test_outputs_are_sorted_by_source_file_and_line():
    rows = [
        row(LONG_ENOUGH + " c", source_file="c.jsonl", line=1),
        row("short", source_file="b.jsonl", line=7),
        row(LONG_ENOUGH + " a", source_file="a.jsonl", line=3),
        row("x", source_file="a.jsonl", line=1),
        row(LONG_ENOUGH + " a", source_file="a.jsonl", line=20),
    ]
    result = clean(rows)
    assert list(zip(result.clean["source_file"], result.clean["line"])) == [("a.jsonl", 3), ("c.jsonl", 1)]
    assert list(zip(result.filtered["source_file"], result.filtered["line"])) == [
        ("a.jsonl", 1), ("a.jsonl", 20), ("b.jsonl", 7)
    ]


def test_counts_reconcile_on_a_mixed_corpus():
    rows = []
    for i in range(40):
        kind = i % 5
        if kind == 0:
            rows.append(row(f"Unique record number {i} with enough text.", line=i))
        elif kind == 1:
            rows.append(row("Repeated record with enough text to keep.", line=i))
        elif kind == 2:
            rows.append(row("short", line=i))
        elif kind == 3:
            rows.append(row("x" * 500, line=i))
        else:
            rows.append(row([f"Question number {i} here?", "\x00"], line=i))
    result = clean(rows, max_chars=200)
    assert_reconciles(rows, result)
    assert result.counts == {"empty_after_cleaning": 8,
                             "too_short": 8, "too_long": 8, "repetitive": 0, "wrong_language": 0, "exact_duplicate": 7, "near_duplicate": 0}
    assert len(result.clean) == 9
    assert result.clean["content_hash"].is_unique().all()
    # Every filtered row keeps its provenance and its original kind.
    assert set(result.filtered.columns) >= {"source_file", "line", "kind", "roles", "contents", "filter"}


def test_clean_and_filtered_partition_the_input():
    rows = [row(LONG_ENOUGH, line=1), row(LONG_ENOUGH, line=2), row("no", line=3), row(LONG_ENOUGH + "!", line=4)]
    result = clean(rows)
    lines = result.clean["line"].to_list() + result.filtered["line"].to_list()
    assert sorted(lines) == [1, 2, 3, 4]


# --- content hash -------------------------------------------------------------------------------

def test_content_hash_known_value():
    # Fixed input, fixed output: a change of algorithm or key layout must be deliberate (it moves
    # every record's train/eval split).
    assert content_hash(["user", "assistant"], ["Hi", "Hello"]) == "ef5c807a3a073ecee000e38e1c45195b"
    assert record_key(["user", "assistant"], ["Hi", "Hello"]) == "user\x1fHi\x1eassistant\x1fHello"
    expected = hashlib.blake2b(b"user\x1fHi\x1eassistant\x1fHello", digest_size=16).hexdigest()
    assert content_hash(["user", "assistant"], ["Hi", "Hello"]) == expected


def test_content_hash_is_128_bit_hex_and_sensitive():
    h = content_hash(["text"], ["abc"])
    assert len(h) == 32 and int(h, 16) >= 0
    assert content_hash(["text"], ["abc"]) == h
    assert content_hash(["text"], ["abd"]) != h
    assert content_hash(["user"], ["abc"]) != h
    assert content_hash(["text", "text"], ["ab", "c"]) != content_hash(["text", "text"], ["a", "bc"])


def test_clean_corpus_hash_is_of_cleaned_contents():
    result = clean([row(["  Question is long enough? ", "Answer\x00!  "])], min_chars=1)
    assert result.clean["content_hash"].to_list() == [
        content_hash(["user", "assistant"], ["Question is long enough?", "Answer!"])
    ]


def test_clean_corpus_is_deterministic():
    rows = [row(f"Record {i % 7} is long enough to keep.", line=i) for i in range(20)]
    first, second = clean(rows), clean(rows)
    assert first.clean.equals(second.clean)
    assert first.filtered.equals(second.filtered)
    assert first.counts == second.counts


# --- configuration ------------------------------------------------------------------------------

def test_defaults():
    config = CleaningConfig()
    assert (config.min_chars, config.max_chars, config.min_rows, config.deduplicate) == (20, 50_000, 16, True)


def test_min_chars_above_max_chars_raises():
    with pytest.raises(ValidationError, match="min_chars"):
        CleaningConfig(min_chars=100, max_chars=10)


def test_equal_bounds_allowed():
    assert CleaningConfig(min_chars=10, max_chars=10).max_chars == 10


def test_unknown_field_raises():
    with pytest.raises(ValidationError, match="max_char"):
        CleaningConfig(max_char=10)


@pytest.mark.parametrize("field", [{"min_chars": 0}, {"max_chars": 0}, {"min_rows": 0}, {"unicode_form": "NFD"}])
def test_out_of_range_values_raise(field):
    with pytest.raises(ValidationError):
        CleaningConfig(**field)


def test_config_is_frozen():
    config = CleaningConfig()
    with pytest.raises(ValidationError):
        config.min_chars = 5
    assert config.min_chars == 20


def test_every_field_is_described():
    for name, info in CleaningConfig.model_fields.items():
        assert info.description, name
