"""Personal data scrubbing (counted by kind, precise) and the opt-in language filter."""

import polars as pl
import pytest

from assets.common.personal_data import scrub_report_text
from assets.corpora.readers import ROW_SCHEMA
from assets.quality.cleaning import clean_corpus
from assets.quality.language import identify
from assets.quality.pii import scrub
from assets.settings.cleaning import CleaningConfig


def rows(*texts: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"source_file": ["a.jsonl"] * len(texts), "line": list(range(1, len(texts) + 1)), "kind": ["text"] * len(texts),
         "roles": [["text"]] * len(texts), "contents": [[t] for t in texts]},
        schema=ROW_SCHEMA,
    )


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("Write to jane.doe+news@mail.example.co.uk today.", "email", "Write to <EMAIL> today."),
        ("Call +44 20 7946 0958 or (555) 123-4567 or 555-123-4567.", "phone", "Call <PHONE> or <PHONE> or <PHONE>."),
        ("The server at 192.168.10.254 answered.", "ipv4", "The server at <IP> answered."),
        ("Ping 2001:db8:85a3:0:0:8a2e:370:7334 and fe80::1ff:fe23:4567:890a now.", "ipv6", "Ping <IP> and <IP> now."),
        ("key sk-abc123DEF456ghi789JKL and AKIAIOSFODNN7EXAMPLE here", "api_key", "key <SECRET> and <SECRET> here"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6", "bearer_token", "Authorization: Bearer <SECRET>"),
        ("db password=hunter2!, api_key: 12345abcde", "credential", "db password=<SECRET>, api_key: <SECRET>"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "private_key", "<SECRET>"),
    ],
)
def test_each_kind_is_replaced_and_counted(text: str, kind: str, expected: str) -> None:
    scrubbed, counts = scrub(rows(text))
    assert scrubbed["contents"].to_list() == [[expected]]
    assert counts[kind] >= 1 and sum(counts.values()) == expected.count("<")


@pytest.mark.parametrize(
    "text",
    ["Bake at 180 °C for 25-30 minutes, 350 g flour.", "From 2024-2025 the rate was 3.5%.", "Meet at 12:30:45 on 2024-06-01.",
     "Version 3.11 of Python", "Use std::vector in C++.", "Call me maybe."],
)
def test_ordinary_numbers_dates_and_times_are_left_alone(text: str) -> None:
    scrubbed, counts = scrub(rows(text))
    assert scrubbed["contents"].to_list() == [[text]] and sum(counts.values()) == 0


def test_scrubbing_in_cleaning_happens_before_deduplication() -> None:
    config = CleaningConfig(scrub_pii=True, min_chars=5)
    result = clean_corpus(rows("Contact alice@example.com for help.", "Contact bob@example.org for help."), config)
    assert result.clean["contents"].to_list() == [["Contact <EMAIL> for help."]]
    assert result.counts["exact_duplicate"] == 1 and result.pii["email"] == 2
    assert clean_corpus(rows("Contact alice@example.com for help."), CleaningConfig(min_chars=5)).pii == {}  # off by default


def test_language_filter_keeps_only_the_asked_languages() -> None:
    english = "The telescope collects light from distant galaxies and focuses it onto a detector."
    french = "Le télescope recueille la lumière des galaxies lointaines et la concentre sur un détecteur."
    german = "Das Teleskop sammelt das Licht ferner Galaxien und bündelt es auf einem Detektor."
    assert identify([english, french, german, "   "]) == ["en", "fr", "de", "und"]
    result = clean_corpus(rows(english, french, german), CleaningConfig(languages=["en", "de"]))
    assert result.clean["line"].to_list() == [1, 3]
    assert result.filtered["filter"].to_list() == ["wrong_language"] and result.counts["wrong_language"] == 1
    assert result.languages == {"en": 1, "fr": 1, "de": 1}


def test_language_codes_are_validated() -> None:
    with pytest.raises(ValueError, match="ISO 639-1"):
        CleaningConfig(languages=["English"])


def test_report_text_scrubbing_catches_addresses_cut_by_the_snippet_limit() -> None:
    texts = ["mail jane.doe@example.com or +1 555 010 9999", "x" * 180 + " reach me at jane.do", "cut jane.doe@exam", "ip 10.0.0.1 ok"]
    frame = pl.DataFrame({"snippet": texts})
    scrubbed = frame.select(scrub_report_text("snippet", cut_at=200))["snippet"].to_list()
    assert scrubbed == ["mail <EMAIL> or <PHONE>", "x" * 180 + " reach me at …", "cut <EMAIL>", "ip <IP> ok"]
