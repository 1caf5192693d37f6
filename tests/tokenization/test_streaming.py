"""The batched, streamed tokenization (batched.py, streaming.py) against the per-row reference
(formatting.encode_record, tokenizing.tokenize_corpus_per_row): the same tokens and labels for
every row, the same split, stats, profile and rejections, written to disk in bounded pieces."""

import random
import resource
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from assets.foundation.tiny_llama import build_tokenizer
from assets.models.chat_format import CLOSE, OPEN, chat_format
from assets.models.loading import load_tokenizer
from assets.quality.cleaning import content_hash
from assets.settings.tokenization import TokenizationConfig
from assets.tokenization import streaming
from assets.tokenization.batched import encode_rows
from assets.tokenization.encoding import renderer
from assets.tokenization.formatting import encode_record
from assets.tokenization.streaming import stream_tokenize
from assets.tokenization.tokenizing import tokenize_corpus, tokenize_corpus_per_row
from pipelines import samples

SCHEMA = {"source_file": pl.String, "line": pl.Int64, "kind": pl.String, "roles": pl.List(pl.String),
          "contents": pl.List(pl.String), "content_hash": pl.String, "split_key": pl.String}


def sample_rows(n: int, seed: int = 0) -> list[tuple[str, list[str], list[str]]]:
    """The sample domains' records (support chats, recipes, astronomy notes) recombined into varied
    lengths: one to several exchanges per conversation, one to many notes per document."""
    rng = random.Random(seed)
    chats = [samples._support_record(rng, rng.random() < 0.5)["messages"] for _ in range(40)]
    recipes = [samples._recipe(rng, rng.random() < 0.5) for _ in range(20)] + [samples._technique(rng, False) for _ in range(20)]
    notes = [samples._note(rng)["text"] for _ in range(40)]
    rows = []
    for _ in range(n):
        draw = rng.random()
        if draw < 0.45:
            messages = list(rng.choice(chats))
            for _ in range(rng.choice((0, 0, 1, 3))):
                messages += [m for m in rng.choice(chats) if m["role"] != "system"]
            rows.append(("chat", [m["role"] for m in messages], [m["content"] for m in messages]))
        elif draw < 0.7:
            record = rng.choice(recipes)
            prompt = record["instruction"] + ("\n\n" + record["input"] if record.get("input") else "")
            rows.append(("instruction", ["user", "assistant"], [prompt, record["output"]]))
        else:
            rows.append(("text", ["text"], [" ".join(rng.choice(notes) for _ in range(rng.choice((1, 2, 5))))]))
    return rows


# Rows off the common path: control tokens, a user turn last, no answer, marker characters in an
# answer, a system prompt alone, an answer far beyond max_seq_len, control text inside a document.
EDGE_ROWS = [
    ("chat", ["user", "assistant"], ["Say <|end|> please", "No."]),
    ("chat", ["user", "assistant", "user"], ["Hi", "Hello!", "And then?"]),
    ("chat", ["user"], ["Only a question"]),
    ("chat", ["user", "assistant"], ["Markers?", f"An {OPEN}odd{CLOSE} answer"]),
    ("chat", ["system", "user", "assistant"], ["Be brief.", "Q", "A"]),
    ("chat", ["user", "assistant"], ["Long " * 300, "answer"]),
    ("chat", ["user", "assistant", "user", "assistant"], ["Q1", "A" * 900, "Q2", "B" * 50]),
    ("text", ["text"], ["A page that prints <|end_of_text|> inline."]),
    ("instruction", ["user", "assistant"], ["Translate", " spaced answer "]),
]


def frame(rows: list[tuple[str, list[str], list[str]]]) -> pl.DataFrame:
    hashes = [content_hash(r, c) for _, r, c in rows]
    return pl.DataFrame({"source_file": ["s.jsonl"] * len(rows), "line": list(range(1, len(rows) + 1)),
                         "kind": [k for k, _, _ in rows], "roles": [r for _, r, _ in rows], "contents": [c for _, _, c in rows],
                         "content_hash": hashes, "split_key": hashes}, schema=SCHEMA)


def assert_same_rows(tokenizer, rows, max_seq_len) -> int:
    """encode_rows == [encode_record ...], row by row; returns how many rows were split or cut."""
    fmt = chat_format(tokenizer)
    kinds, roles, contents = ([row[i] for row in rows] for i in range(3))
    batched = encode_rows(tokenizer, fmt, kinds, roles, contents, max_seq_len)
    several = 0
    for number, (row, new) in enumerate(zip(rows, batched)):
        old = encode_record(tokenizer, fmt, *row, max_seq_len)
        where = f"row {number} ({row[0]}, max_seq_len {max_seq_len})"
        assert (new.rejected, new.system_folded, new.exchanges_dropped) == (old.rejected, old.system_folded, old.exchanges_dropped), where
        assert [(ids.tolist(), labels.tolist(), truncated) for ids, labels, truncated in new.examples] == \
               [(e.input_ids, e.labels, e.truncated) for e in old.examples], where
        several += len(old.examples) > 1 or any(e.truncated for e in old.examples)
    return several


@pytest.mark.parametrize("max_seq_len", [48, 200, 1024])
def test_batched_rows_equal_the_per_row_reference_with_the_builtin_tokenizer(max_seq_len: int) -> None:
    tokenizer = build_tokenizer()
    several = assert_same_rows(tokenizer, sample_rows(150) + EDGE_ROWS, max_seq_len)
    assert several > 0  # the split, window and cut paths were exercised, not only the short one
    assert renderer(tokenizer, chat_format(tokenizer)).__name__ == "direct"  # the fast renderer is the one compared


@pytest.mark.parametrize("family", ["qwen3", "llama3", "gemma2", "mistral", "phi3", "llama2"])
def test_batched_rows_equal_the_per_row_reference_with_family_templates(family: str) -> None:
    """Published templates: Qwen3 reads the answers (reasoning blocks), Gemma 2 refuses a system role,
    Mistral drops it, Phi-3 swallows newlines, Llama 2 puts a space before EOS."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "families"))
    from family_specs import FAMILIES
    from family_tokenizers import build_tokenizer as build_family

    tokenizer = build_family(FAMILIES[family])
    rows = sample_rows(40, seed=1) + EDGE_ROWS + [
        ("chat", ["user", "assistant"], ["Think", "<think>\nplan\n</think>\n\nThe answer."]),
        ("chat", ["system", "user", "assistant", "user", "assistant"], ["Rules.", "Q1", "<think>x</think>A1", "Q2", "A2"]),
    ]
    for max_seq_len in (64, 512):
        assert_same_rows(tokenizer, rows, max_seq_len)
    assert renderer(tokenizer, chat_format(tokenizer)).__name__ == "direct"


def test_tokenize_corpus_equals_the_per_row_path_stats_profile_rejections_and_datasets() -> None:
    tokenizer = build_tokenizer()
    clean = frame(sample_rows(300, seed=2) + EDGE_ROWS)
    config = TokenizationConfig(max_seq_len=128, eval_fraction=0.3)
    old, new = tokenize_corpus_per_row(clean, tokenizer, config), tokenize_corpus(clean, tokenizer, config)
    assert new.stats == old.stats
    assert new.stats["rows_rejected"] >= 2 and new.stats["split_conversations"] > 0 and new.stats["windowed_documents"] > 0
    assert new.profile.equals(old.profile) and new.rejected.equals(old.rejected)
    for split in ("train", "eval"):
        assert getattr(new, split).features == getattr(old, split).features
        assert getattr(new, split).to_dict() == getattr(old, split).to_dict()


def test_stream_tokenize_writes_what_load_from_disk_reads_chunk_by_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small chunks and shards: rows are read in record batches, the datasets grow shard by shard,
    and the result is the in-memory path's, to the token."""
    from datasets import load_from_disk

    build_tokenizer().save_pretrained(tmp_path / "tok")
    clean = frame(sample_rows(400, seed=3) + EDGE_ROWS)
    clean.write_parquet(tmp_path / "rows.parquet", row_group_size=50)
    config = TokenizationConfig(max_seq_len=256, eval_fraction=0.2)
    monkeypatch.setattr(streaming, "SHARD_BYTES", 200_000)
    seen: list[int] = []
    original = streaming.encode_chunk
    monkeypatch.setattr(streaming, "encode_chunk", lambda tok, fmt, batch, *rest: (seen.append(batch.num_rows), original(tok, fmt, batch, *rest))[1])
    lines: list[str] = []
    result = stream_tokenize(tmp_path / "rows.parquet", tmp_path / "tok", config, tmp_path / "out", chunk_rows=64, log=lines.append)
    assert result.workers == 1 and max(seen) <= 64 and sum(seen) == clean.height  # never the whole table at once
    reference = tokenize_corpus_per_row(clean, load_tokenizer(tmp_path / "tok"), config)
    assert result.stats == reference.stats
    assert result.profile.equals(reference.profile) and result.rejected.equals(reference.rejected)
    for split in ("train", "eval"):
        loaded = load_from_disk(str(tmp_path / "out" / split))
        assert loaded.features == getattr(reference, split).features
        assert loaded.to_dict() == getattr(reference, split).to_dict()
    assert len(list((tmp_path / "out" / "train").glob("data-*-of-*.arrow"))) > 1  # sharded as it grew
    assert lines[0].startswith("tokenizing 409 rows") and lines[-1].startswith("tokenized 409 rows")


def test_chunks_are_bounded_by_text_bytes_as_well_as_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long documents: a chunk holds at most chunk_bytes of text (a longer row alone), so a worker's
    memory does not grow with the rows' length; the result is still the per-row path's."""
    build_tokenizer().save_pretrained(tmp_path / "tok")
    rng = random.Random(7)
    rows = [("text", ["text"], [" ".join(samples._note(rng)["text"] for _ in range(rng.choice((5, 40, 200))))]) for _ in range(60)]
    clean = frame(rows + sample_rows(40, seed=8))
    clean.write_parquet(tmp_path / "rows.parquet")
    sizes: list[tuple[int, int]] = []
    original = streaming.encode_chunk

    def spy(tok, fmt, batch, *rest):
        sizes.append((batch.num_rows, sum(len(c.encode()) for row in batch.column("contents").to_pylist() for c in row)))
        return original(tok, fmt, batch, *rest)

    monkeypatch.setattr(streaming, "encode_chunk", spy)
    config = TokenizationConfig(max_seq_len=256)
    result = stream_tokenize(tmp_path / "rows.parquet", tmp_path / "tok", config, tmp_path / "out", chunk_bytes=40_000)
    longest = max(sum(len(c.encode()) for c in contents) for _, _, contents in rows)
    assert longest > 40_000 and sum(n for n, _ in sizes) == clean.height and len(sizes) > 10
    assert all(size <= 40_000 or n == 1 for n, size in sizes) and any(n == 1 and size > 40_000 for n, size in sizes)
    reference = tokenize_corpus_per_row(clean, load_tokenizer(tmp_path / "tok"), config)
    assert result.stats == reference.stats and result.profile.equals(reference.profile)


def test_an_empty_split_is_refused_with_the_reason(tmp_path: Path) -> None:
    build_tokenizer().save_pretrained(tmp_path / "tok")
    frame([("chat", ["user"], ["Only a question"]), ("text", ["text"], ["One document."])]).write_parquet(tmp_path / "rows.parquet")
    with pytest.raises(ValueError, match=r"the split left \d train and \d eval examples from 2 rows \(1 rows had nothing"):
        stream_tokenize(tmp_path / "rows.parquet", tmp_path / "tok", TokenizationConfig(eval_fraction=0.5), tmp_path / "out")


def test_memory_does_not_hold_the_token_lists(tmp_path: Path) -> None:
    """Peak RSS grows by much less than the tokens written: they go to disk chunk by chunk."""
    build_tokenizer().save_pretrained(tmp_path / "tok")
    rows = sample_rows(4000, seed=4)
    frame(rows).write_parquet(tmp_path / "rows.parquet", row_group_size=500)
    stream_tokenize(tmp_path / "rows.parquet", tmp_path / "tok", TokenizationConfig(max_seq_len=256), tmp_path / "warm", chunk_rows=500)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = stream_tokenize(tmp_path / "rows.parquet", tmp_path / "tok", TokenizationConfig(max_seq_len=256), tmp_path / "out", chunk_rows=500)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    tokens = result.stats["train_tokens"] + result.stats["eval_tokens"]
    as_python_lists = tokens * 2 * 8 * 2  # ids and labels, a pointer and more per int in the old lists
    assert tokens > 1_000_000
    assert grown < as_python_lists / 4, f"peak RSS grew {grown / 2**20:.0f} MB for {tokens} tokens"
    assert np.isclose(result.profile["length"].sum(), tokens)


@pytest.mark.integration
def test_worker_processes_give_the_serial_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two spawned workers, chunks in flight: the same datasets, stats and profile as one process."""
    from datasets import load_from_disk

    monkeypatch.setattr(streaming, "SERIAL_ROWS", 10)
    build_tokenizer().save_pretrained(tmp_path / "tok")
    frame(sample_rows(600, seed=5) + EDGE_ROWS).write_parquet(tmp_path / "rows.parquet")
    config = TokenizationConfig(max_seq_len=200)
    serial = stream_tokenize(tmp_path / "rows.parquet", tmp_path / "tok", config, tmp_path / "one", workers=1, chunk_rows=50)
    pooled = stream_tokenize(tmp_path / "rows.parquet", tmp_path / "tok", config, tmp_path / "two", workers=2, chunk_rows=50)
    assert pooled.workers == 2 and serial.workers == 1
    assert pooled.stats == serial.stats and pooled.profile.equals(serial.profile) and pooled.rejected.equals(serial.rejected)
    for split in ("train", "eval"):
        assert load_from_disk(str(tmp_path / "two" / split)).to_dict() == load_from_disk(str(tmp_path / "one" / split)).to_dict()


LONG_CHATS = [
    ("chat", ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant"],
     ["Be kind.", "First question here", "A first answer.", "Second?", "B" * 40, "Third one", "Short.", "Last", "C" * 25]),
    ("chat", ["user", "assistant", "user", "assistant", "user", "assistant"], ["Q1", "A1 " * 20, "Q2 " * 9, "A2", "Q3", "A3 " * 12]),
]


@pytest.mark.parametrize("template", ["builtin", "no end of turn"])
def test_split_decisions_equal_the_reference_at_every_max_seq_len(template: str) -> None:
    """The split greedy decides on token counts without offsets; where an added EOS would decide
    (a count of exactly max_seq_len, templates with no end-of-turn token) it labels the candidate.
    Every max_seq_len over the candidates' lengths (byte tokens: each length is hit), with and
    without an end-of-turn token in the template."""
    tokenizer = build_tokenizer()
    if template == "no end of turn":  # answers end with no special token: the EOS is appended
        tokenizer.chat_template = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
        assert chat_format(tokenizer).end_of_turn is None
    for max_seq_len in range(20, 140):
        assert_same_rows(tokenizer, LONG_CHATS, max_seq_len)


def test_a_chunk_travels_with_its_labels_as_a_mask_and_arrives_whole() -> None:
    """Workers send each labels column as the supervised mask (a label is its token's id or
    IGNORE_INDEX); the parent gets back the same record batches, schema metadata included."""
    import pickle

    import pyarrow as pa

    tokenizer = build_tokenizer()
    chunk = streaming.encode_chunk(tokenizer, chat_format(tokenizer), frame(sample_rows(120, seed=6) + EDGE_ROWS).to_arrow().to_batches()[0],
                                   TokenizationConfig(max_seq_len=96, eval_fraction=0.3))
    data = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
    back = pickle.loads(data)
    for split in ("train", "eval"):
        assert back.batches[split].num_rows > 0
        assert back.batches[split].equals(chunk.batches[split])
        assert back.batches[split].schema.equals(chunk.batches[split].schema, check_metadata=True)
    labels = pa.concat_arrays([chunk.batches[s].column("labels").values for s in ("train", "eval")]).to_numpy()
    assert len(data) < labels.nbytes  # the int64 labels did not travel
    assert back.counts == chunk.counts and back.rejected == chunk.rejected and back.rows == chunk.rows
    assert all(np.array_equal(back.profile[name], chunk.profile[name]) for name in chunk.profile)
