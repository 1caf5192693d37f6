"""Near-duplicates: planted copies are found, different texts are not merged, none leaks across the split."""

import random

import polars as pl

from assets.corpora.readers import ROW_SCHEMA
from assets.quality.cleaning import clean_corpus
from assets.quality.near_dups import NUM_BINS, band_layout, find_near_duplicates, signatures
from assets.settings.cleaning import CleaningConfig
from assets.tokenization.tokenizing import split_of

WORDS = ("river mountain forest engine kettle violin harbor lantern pepper saddle comet glacier orchard "
         "ledger canvas bishop walnut meadow falcon copper thimble prairie anchor tulip granite").split()


def documents(n: int, seed: int = 0, words: int = 80) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words)) + f" (document {i})" for i in range(n)]


def edit(text: str, rng: random.Random, changes: int = 2) -> str:
    """A near copy: a couple of words replaced, as in a re-sent e-mail or a fixed typo."""
    words = text.split()
    for _ in range(changes):
        words[rng.randrange(len(words))] = rng.choice(WORDS)
    return " ".join(words)


def test_planted_near_duplicates_are_found_and_distinct_texts_are_not_merged() -> None:
    rng = random.Random(1)
    originals = documents(300)
    copies = [edit(originals[i], rng) for i in range(0, 300, 3)]  # 100 planted near copies
    result = find_near_duplicates(originals + copies, threshold=0.8)
    found = result.cluster[300:]
    assert (found == list(range(0, 300, 3))).mean() >= 0.95  # recall on planted copies
    assert len(set(result.cluster[:300].tolist())) >= 298  # random originals stay apart (precision)


def test_signatures_are_deterministic_across_calls() -> None:
    texts = documents(5)
    assert (signatures(texts) == signatures(texts)).all()


def test_band_layout_targets_just_below_the_threshold() -> None:
    bands, rows = band_layout(0.85)
    # A bin agrees with probability J + (1 - J) / 15 (4-bit values also agree by chance).
    lsh_threshold = ((1 / bands) ** (1 / rows) - 1 / 15) / (1 - 1 / 15)
    assert bands * rows == NUM_BINS and rows >= 8 and 0.7 <= lsh_threshold <= 0.85


def frame(texts: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"source_file": ["a.jsonl"] * len(texts), "line": list(range(1, len(texts) + 1)), "kind": ["text"] * len(texts),
         "roles": [["text"]] * len(texts), "contents": [[t] for t in texts]},
        schema=ROW_SCHEMA,
    )


def test_cleaning_drops_later_near_copies_and_keeps_the_first() -> None:
    rng = random.Random(2)
    texts = documents(20)
    texts.insert(5, edit(texts[2], rng))
    result = clean_corpus(frame(texts), CleaningConfig())
    assert result.counts["near_duplicate"] == 1
    assert result.filtered.filter(pl.col("filter") == "near_duplicate")["line"].to_list() == [6]


def test_kept_near_duplicates_share_one_split() -> None:
    rng = random.Random(3)
    originals = documents(60, seed=3)
    texts = originals + [edit(t, rng) for t in originals]
    result = clean_corpus(frame(texts), CleaningConfig(near_dedup=False))
    assert result.clean.height == 120 and result.counts["near_duplicate"] == 0
    splits = result.clean.with_columns(
        pl.col("split_key").map_elements(lambda key: split_of(key, 0.5, "salt"), return_dtype=pl.String).alias("split")
    )
    # Each original and its copy (lines i and i + 60) land in the same split, whatever their own hashes say.
    by_line = dict(zip(splits["line"], splits["split"]))
    assert all(by_line[i] == by_line[i + 60] for i in range(1, 61))
    assert set(by_line.values()) == {"train", "eval"}


def test_signing_in_slices_matches_signing_each_text_alone() -> None:
    # More texts than one slice holds: slices are signed in parallel, and no shingle may cross texts.
    rng = random.Random(4)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6))) for _ in range(9000)]
    together = signatures(texts)
    assert all((together[i] == signatures([texts[i]])[0]).all() for i in range(0, 9000, 7))
