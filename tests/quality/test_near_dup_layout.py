"""Near-duplicates on documentation-like text: copies that differ by layout (re-flowed, re-indented,
runs of spaces, tabs, CRLF) plus a few words are found; distinct documents that share the boilerplate
real docs share are not merged; a layout-only copy is dropped as a near duplicate."""

import random
import re
import textwrap

import polars as pl

from assets.corpora.readers import ROW_SCHEMA
from assets.quality.cleaning import clean_corpus
from assets.quality.near_dups import SHINGLE_BYTES, find_near_duplicates, normalise
from assets.settings.cleaning import CleaningConfig

THRESHOLD = CleaningConfig().near_dup_threshold
NAMES = ("batch_size", "path", "encoding", "timeout", "revision", "seed", "device", "dtype", "columns",
         "partition", "threshold", "max_length", "learning_rate", "checkpoint", "tokenizer", "schema")
THINGS = ("table", "model", "adapter", "dataset", "run", "file", "record", "column", "asset", "request")
# Sentences of the kind API references repeat from page to page: distinct documents share most of
# their vocabulary and many of their phrases, as real documentation does.
SENTENCES = (
    "Returns the {thing} as a new {other}; the original {thing} is not modified.",
    "If `{name}` is None, the value from the {other} configuration is used instead.",
    "Raises ValueError if `{name}` is negative or larger than the number of {thing}s.",
    "The `{name}` argument controls how many {thing}s are read at once; larger values use more memory.",
    "This {thing} is deprecated and will be removed in a future release; use `{name}` on the {other}.",
    "See the {other} guide for an example that sets `{name}` for every {thing} in a project.",
    "When `{name}` is given, each {thing} is checked against the {other} before it is written.",
    "Defaults to the {other} of the current {thing}, which is usually what you want.",
    "Note that `{name}` is resolved relative to the working directory of the {other}.",
    "The {thing} is cached; call `refresh()` to read it again after the {other} changes.",
    "Parameters: `{name}` (int, optional), the number of {thing}s kept per {other}.",
    "Example: pass `{name}=4` to split the {thing} into four parts, one per {other}.",
)


def document(rng: random.Random) -> str:
    sentences = [rng.choice(SENTENCES).format(name=rng.choice(NAMES), thing=rng.choice(THINGS), other=rng.choice(THINGS))
                 for _ in range(rng.randint(8, 12))]
    head = f"{rng.choice(NAMES)}_{rng.randrange(10_000)}({rng.choice(NAMES)}, {rng.choice(NAMES)})"
    paragraphs = [" ".join(sentences[:3]), " ".join(sentences[3:])]
    return head + "\n\n" + "\n\n".join(textwrap.fill(p, 79) for p in paragraphs)


def layout_copy(text: str, rng: random.Random) -> str:
    """One or two words changed, then two layout changes of the kinds exports and editors make."""
    words = text.split(" ")
    for _ in range(rng.randint(1, 2)):
        words[rng.randrange(len(words))] = rng.choice(NAMES)
    text = " ".join(words)
    changes = {
        "reflow": lambda t: "\n\n".join(textwrap.fill(p, rng.randint(40, 110)) for p in re.split(r"\n\s*\n", t)),
        "reindent": lambda t: "\n".join("    " + line if line else line for line in t.split("\n")),
        "space_runs": lambda t: re.sub(" ", lambda m: " " * rng.choice((1, 2, 3, 4)), t),
        "tabs": lambda t: re.sub(" ", lambda m: rng.choice((" ", " ", "\t")), t),
        "crlf": lambda t: t.replace("\n", "\r\n"),
    }
    for name in rng.sample(sorted(changes), 2):
        text = changes[name](text)
    return text


def frame(texts: list[str]) -> pl.DataFrame:
    n = len(texts)
    return pl.DataFrame({"source_file": ["docs.jsonl"] * n, "line": list(range(1, n + 1)), "kind": ["text"] * n,
                         "roles": [["text"]] * n, "contents": [[t] for t in texts]}, schema=ROW_SCHEMA)


def true_jaccard(a: str, b: str) -> float:
    """Exact Jaccard of normalised byte 5-grams: what the threshold is defined on."""
    def shingles(text: str) -> set[bytes]:
        data = normalise([text])[0].encode()
        return {data[i:i + SHINGLE_BYTES] for i in range(max(len(data) - SHINGLE_BYTES + 1, 1))}
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_normalise_reads_any_layout_as_single_spaces() -> None:
    assert normalise(["  Returns the\tTable;\r\n\r\n    the  original\u00a0is KEPT.  "]).to_list() == [
        "returns the table; the original is kept."]


def test_copies_with_layout_edits_and_a_few_words_changed_are_found() -> None:
    rng = random.Random(11)
    originals = [document(rng) for _ in range(200)]
    copies = [layout_copy(originals[i], rng) for i in range(0, 200, 2)]
    # The planted copies are near-duplicates by the setting's own definition ...
    assert min(true_jaccard(originals[2 * i], copy) for i, copy in enumerate(copies)) >= 0.88
    result = find_near_duplicates(originals + copies, THRESHOLD)
    # ... and (nearly) all are found: before normalisation, fewer than half were.
    found = (result.cluster[200:] == result.cluster[list(range(0, 200, 2))]).mean()
    assert found >= 0.95, found


def test_distinct_documents_sharing_boilerplate_are_not_merged() -> None:
    rng = random.Random(12)
    texts = [document(rng) for _ in range(400)]
    # Siblings: the same page with a sentence swapped, a common edit between templated pages.
    for i in range(0, 100, 2):
        paragraphs = texts[i].split("\n\n")
        paragraphs[1] = paragraphs[1].replace(".", ". " + rng.choice(SENTENCES).format(name="seed", thing="run", other="file"), 1)
        texts.append("\n\n".join(paragraphs))
    result = find_near_duplicates(texts, THRESHOLD)
    merged = [(row, int(head)) for row, head in enumerate(result.cluster) if head != row]
    wrong = [(row, head, round(true_jaccard(texts[row], texts[head]), 3)) for row, head in merged
             if max(true_jaccard(texts[row], texts[other]) for other in range(len(texts))
                    if other != row and result.cluster[other] == head) < THRESHOLD]
    assert wrong == []


def test_a_copy_that_differs_only_in_layout_is_dropped_as_a_near_duplicate() -> None:
    rng = random.Random(13)
    texts = [document(rng) for _ in range(10)]
    reflowed = "\n".join("\t" + line for line in textwrap.fill(" ".join(texts[3].split()), 50).split("\n"))
    layout_only = re.sub(" ", lambda m: " " * rng.choice((1, 2, 3)), reflowed).replace("\n", "\r\n")
    texts.insert(7, layout_only)
    result = clean_corpus(frame(texts), CleaningConfig())
    # Exact de-duplication keeps byte-level identity (the content hash names the record); layout-only
    # copies are the near-duplicate filter's, whose similarity for them is 1.
    assert result.counts["exact_duplicate"] == 0 and result.counts["near_duplicate"] == 1
    assert result.filtered.filter(pl.col("filter") == "near_duplicate")["line"].to_list() == [8]
