"""The settings of corpus cleaning: what a domain's `cleaning` section and the launchpad accept."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Filter names in the order they are applied; the first that hits a row is its reason.
FILTERS = ("empty_after_cleaning", "too_short", "too_long", "repetitive", "wrong_language", "exact_duplicate", "near_duplicate")


class CleaningConfig(BaseModel):
    """How a domain's corpus is cleaned before validation."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # NaN and inf refused by name

    unicode_form: Literal["NFC", "NFKC"] = Field(
        "NFC",
        description="Unicode normalisation. NFC keeps characters as written; NFKC also folds "
        "compatibility forms (ligatures, full-width digits), which helps search-like data but "
        "changes text people may want verbatim.",
    )
    min_chars: int = Field(
        20, ge=1, le=1_000_000, strict=True,
        description="Records shorter than this many characters (all turns) are filtered (at most 1,000,000).",
    )
    max_chars: int = Field(
        50_000,
        ge=1,
        le=10_000_000,
        strict=True,
        description="Records longer than this many characters are filtered; long plain documents "
        "are cut into windows later, so raise this rather than losing long books. At most 10,000,000 "
        "(~2,500 pages in one record): past that a batch of records no longer fits in memory.",
    )
    max_quarantined_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Largest share of the rows read that may be unreadable (quarantined) before the "
        "domain stops at its data checks: when most of a domain cannot be read, the export or its "
        "encoding is usually wrong, and training on the remainder hides it. 1.0 trains on whatever "
        "is readable.",
    )
    batch_rows: int = Field(
        8192,
        ge=64,
        le=131_072,
        strict=True,
        description="Rows cleaned per streamed batch, 64 to 131,072. Memory grows with batch_rows x record "
        "size, not with the corpus; lower it for domains of very long documents. The ceiling keeps a "
        "domain from turning streaming into reading everything at once.",
    )
    min_rows: int = Field(
        16,
        ge=1,
        le=100_000_000,
        strict=True,
        description="Fewest clean rows a domain needs to be trained (at most 100,000,000); below it the "
        "domain stops at the data checks instead of producing a meaningless adapter.",
    )
    max_repeated_line_share: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Records whose repeated lines (second and later copies of a line within the record) "
        "make up more than this share of their characters are filtered as `repetitive`: boilerplate, "
        "scraped menus, a log line printed a thousand times. 1.0 turns the filter off.",
    )
    deduplicate: bool = Field(
        True, description="Drop exact duplicates (same roles and cleaned contents)."
    )

    near_dedup: bool = Field(
        True,
        description="Drop near-duplicates (MinHash/LSH over character 5-grams of the normalised text), keeping the first in "
        "landing order. Off: they are kept, but still share one split so none leaks into eval.",
    )
    near_dup_threshold: float = Field(
        0.85,
        ge=0.5,
        le=1.0,
        description="Jaccard similarity of character 5-grams of the normalised text (lower-cased, every "
        "run of whitespace read as one space: layout alone never lowers it) from which two records count "
        "as near-duplicates; a pair is merged when its MinHash estimate clears the threshold by 0.01 "
        "(about one standard error). Lower catches looser copies and risks merging merely similar records.",
    )
    scrub_pii: bool = Field(
        False,
        description="Replace e-mail addresses, phone numbers, IP addresses and credential-looking "
        "strings (API keys, tokens, passwords, private keys) with <EMAIL>, <PHONE>, <IP>, <SECRET>; "
        "counts by kind in metadata.",
    )
    languages: list[str] = Field(
        default_factory=list,
        max_length=200,  # ISO 639-1 has 184 codes
        description="Keep only records identified (py3langid, bundled model) as one of these ISO 639-1 "
        "codes, e.g. [en]; empty keeps every language. Unreliable on texts of a few words.",
    )

    @model_validator(mode="after")
    def _languages_are_codes(self) -> "CleaningConfig":
        bad = [code for code in self.languages if not (len(code) == 2 and code.isascii() and code.islower())]
        if bad:
            raise ValueError(f"languages must be ISO 639-1 codes like 'en', got {bad}")
        return self

    @model_validator(mode="after")
    def _bounds_ordered(self) -> "CleaningConfig":
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) exceeds max_chars ({self.max_chars})")
        return self
