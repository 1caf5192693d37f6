"""Train/eval split and corpus tokenization (assets/tokenization/tokenizing.py)."""

import polars as pl
import pytest
from pydantic import ValidationError

from assets.foundation.tiny_llama import build_tokenizer
from assets.models.batches import IGNORE_INDEX
from assets.models.chat_format import chat_format
from assets.quality.cleaning import content_hash
from assets.settings.tokenization import TokenizationConfig
from assets.tokenization.formatting import encode_record
from assets.tokenization.tokenizing import clamp_to_context, split_of, tokenize_corpus

SALT = "loraline-split-v1"


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def record(kind, roles, contents, line, source_file="a.jsonl"):
    return {"source_file": source_file, "line": line, "kind": kind, "roles": roles, "contents": contents,
            "content_hash": content_hash(roles, contents)}


def text(body, line, source_file="a.jsonl"):
    return record("text", ["text"], [body], line, source_file)


def chat(question, answer, line, source_file="a.jsonl"):
    return record("chat", ["user", "assistant"], [question, answer], line, source_file)


def clean_frame(rows):
    schema = {"source_file": pl.String, "line": pl.Int64, "kind": pl.String, "roles": pl.List(pl.String),
              "contents": pl.List(pl.String), "content_hash": pl.String}
    return pl.DataFrame({name: [r[name] for r in rows] for name in schema}, schema=schema)


def split_map(tokenized):
    """(source_file, line) -> split, for every example in both datasets."""
    out = {}
    for split, dataset in (("train", tokenized.train), ("eval", tokenized.eval)):
        for source_file, line in zip(dataset["source_file"], dataset["line"]):
            out[(source_file, line)] = split
    return out


def mixed_rows(n, start=0, source_file="a.jsonl"):
    """Alternating short text and chat rows, each well under 32 tokens."""
    rows = []
    for i in range(start, start + n):
        if i % 2:
            rows.append(chat(f"Q{i}?", f"A{i}.", i, source_file))
        else:
            rows.append(text(f"Doc {i}.", i, source_file))
    return rows


# --- split ---------------------------------------------------------------------------------------

def test_split_of_is_deterministic_and_binary():
    h = content_hash(["text"], ["x"])
    results = {split_of(h, 0.3, SALT) for _ in range(5)}
    assert len(results) == 1 and results <= {"train", "eval"}


def test_split_of_depends_on_hash_fraction_and_salt_only():
    hashes = [content_hash(["text"], [str(i)]) for i in range(400)]
    base = [split_of(h, 0.5, SALT) for h in hashes]
    assert base == [split_of(h, 0.5, SALT) for h in hashes]
    assert base != [split_of(h, 0.5, "another-salt") for h in hashes]  # the salt reshuffles
    assert base != [split_of(h, 0.2, SALT) for h in hashes]


def test_split_of_known_values():
    # Pins the scheme: changing it would move existing records between train and eval (leakage).
    hashes = [content_hash(["text"], [str(i)]) for i in range(16)]
    pattern = "".join("E" if split_of(h, 0.5, SALT) == "eval" else "T" for h in hashes)
    assert pattern == "ETTEETETEEEEETTE"


def test_split_of_threshold_matches_blake2b_scheme():
    h = "ef5c807a3a073ecee000e38e1c45195b"
    import hashlib

    value = int.from_bytes(hashlib.blake2b(f"{SALT}:{h}".encode(), digest_size=8).digest(), "big") / 2**64
    assert split_of(h, value + 1e-9, SALT) == "eval"
    assert split_of(h, max(value - 1e-9, 1e-12), SALT) == "train"


def test_growing_eval_fraction_only_moves_train_to_eval():
    hashes = [content_hash(["text"], [str(i)]) for i in range(500)]
    small = {h for h in hashes if split_of(h, 0.1, SALT) == "eval"}
    large = {h for h in hashes if split_of(h, 0.3, SALT) == "eval"}
    assert small <= large


def test_eval_share_matches_eval_fraction():
    hashes = [content_hash(["text"], [f"synthetic record {i}"]) for i in range(2000)]
    for fraction in (0.1, 0.25, 0.5):
        share = sum(split_of(h, fraction, SALT) == "eval" for h in hashes) / len(hashes)
        # Binomial standard deviation at n=2000 is at most 0.011; allow ~4 sigma.
        assert abs(share - fraction) < 0.045, (fraction, share)


def test_adding_rows_never_moves_existing_rows(tok):
    config = TokenizationConfig(max_seq_len=128, eval_fraction=0.3)
    old_rows = mixed_rows(40)
    new_rows = old_rows + mixed_rows(60, start=1000, source_file="b.jsonl")
    old = split_map(tokenize_corpus(clean_frame(old_rows), tok, config))
    new = split_map(tokenize_corpus(clean_frame(new_rows), tok, config))
    assert len(old) == 40 and len(new) == 100
    assert {key: new[key] for key in old} == old


def test_split_does_not_depend_on_row_position(tok):
    config = TokenizationConfig(max_seq_len=128, eval_fraction=0.3)
    rows = mixed_rows(40)
    forward = split_map(tokenize_corpus(clean_frame(rows), tok, config))
    backward = split_map(tokenize_corpus(clean_frame(rows[::-1]), tok, config))
    assert forward == backward


# --- tokenize_corpus -----------------------------------------------------------------------------

def test_tokenize_corpus_examples_and_stats(tok):
    config = TokenizationConfig(max_seq_len=64, eval_fraction=0.3)
    rows = mixed_rows(30)
    result = tokenize_corpus(clean_frame(rows), tok, config)
    stats = result.stats

    expected = {"train": [], "eval": []}
    for r in rows:
        [example] = encode_record(tok, chat_format(tok), r["kind"], r["roles"], r["contents"], config.max_seq_len).examples
        expected[split_of(r["content_hash"], config.eval_fraction, config.split_salt)].append(example)
    assert expected["train"] and expected["eval"]

    for split, dataset in (("train", result.train), ("eval", result.eval)):
        assert dataset["input_ids"] == [e.input_ids for e in expected[split]]
        assert dataset["labels"] == [e.labels for e in expected[split]]
        assert dataset["length"] == [len(e.input_ids) for e in expected[split]]
        assert set(dataset.column_names) == {"input_ids", "labels", "length", "source_file", "line"}

    lengths = [len(e.input_ids) for split in ("train", "eval") for e in expected[split]]
    assert stats["rows"] == 30
    assert stats["train_examples"] == len(expected["train"])
    assert stats["eval_examples"] == len(expected["eval"])
    assert stats["train_tokens"] == sum(len(e.input_ids) for e in expected["train"])
    assert stats["eval_tokens"] == sum(len(e.input_ids) for e in expected["eval"])
    assert stats["train_supervised_tokens"] == sum(e.supervised_tokens for e in expected["train"])
    assert stats["eval_supervised_tokens"] == sum(e.supervised_tokens for e in expected["eval"])
    assert stats["truncated_examples"] == 0
    assert stats["rows_rejected"] == 0 and result.rejected.height == 0
    assert stats["windowed_documents"] == 0
    assert stats["length_max"] == max(lengths)
    ordered = sorted(lengths)
    assert stats["length_p50"] in ordered and stats["length_p90"] in ordered and stats["length_p99"] in ordered
    assert min(lengths) <= stats["length_p50"] <= stats["length_p90"] <= stats["length_p99"] <= stats["length_max"]
    assert stats["length_p99"] == float(ordered[round(0.99 * (len(ordered) - 1))])


def test_supervised_token_counts_for_known_rows(tok):
    rows = [text("abcd", 1), chat("Q", "xyz", 2)]
    # Pick a salt for which the two rows land in different splits, so both splits exist.
    salt = next(
        s for s in (f"salt-{i}" for i in range(1000))
        if {split_of(r["content_hash"], 0.5, s) for r in rows} == {"train", "eval"}
    )
    config = TokenizationConfig(max_seq_len=64, eval_fraction=0.5, split_salt=salt)
    stats = tokenize_corpus(clean_frame(rows), tok, config).stats
    # text: BOS a b c d EOS -> 5 predicted tokens; chat: x y z EOS -> 4 predicted tokens.
    text_split = split_of(rows[0]["content_hash"], 0.5, salt)
    chat_split = "eval" if text_split == "train" else "train"
    assert stats[f"{text_split}_supervised_tokens"] == 5
    assert stats[f"{chat_split}_supervised_tokens"] == 4
    assert stats[f"{text_split}_tokens"] == 6


def test_chat_with_prompt_over_max_seq_len_is_set_aside_with_its_reason(tok):
    config = TokenizationConfig(max_seq_len=32, eval_fraction=0.5)
    rows = mixed_rows(20) + [chat("Q" * 200, "short answer", 500, "long.jsonl"), chat("W" * 100, "another", 501, "long.jsonl")]
    result = tokenize_corpus(clean_frame(rows), tok, config)
    stats = result.stats
    assert stats["rows_rejected"] == 2 and stats["exchanges_dropped"] == 2
    assert result.rejected.select("source_file", "line", "reason").rows() == [
        ("long.jsonl", 500, "no assistant turn starts within max_seq_len (32 tokens)"),
        ("long.jsonl", 501, "no assistant turn starts within max_seq_len (32 tokens)"),
    ]
    assert result.rejected["content_hash"].to_list() == [rows[-2]["content_hash"], rows[-1]["content_hash"]]
    kept_lines = set(result.train["line"]) | set(result.eval["line"])
    assert 500 not in kept_lines and 501 not in kept_lines
    assert stats["train_examples"] + stats["eval_examples"] == len(kept_lines)
    # Rows in = rows with examples + rows set aside; the profile holds a zero-supervision entry per rejection.
    assert len(kept_lines) + stats["rows_rejected"] == stats["rows"] == 22
    assert (result.profile["supervised_tokens"] == 0).sum() == 2
    for dataset in (result.train, result.eval):
        for labels in dataset["labels"]:
            assert any(label != IGNORE_INDEX for label in labels[1:])
        assert all(length <= 32 for length in dataset["length"])


def test_a_long_conversation_becomes_several_examples_in_one_split(tok):
    config = TokenizationConfig(max_seq_len=48, eval_fraction=0.5)
    long_chat = record("chat", ["system", "user", "assistant", "user", "assistant"], ["Sys", "q" * 15, "a" * 15, "r" * 15, "b" * 15], 800)
    result = tokenize_corpus(clean_frame(mixed_rows(10) + [long_chat]), tok, config)
    assert result.stats["split_conversations"] == 1 and result.stats["truncated_examples"] == 0
    split = split_of(long_chat["content_hash"], 0.5, config.split_salt)
    dataset = result.train if split == "train" else result.eval
    assert sum(line == 800 for line in dataset["line"]) == 2


def test_truncated_but_still_supervised_chat_is_kept_and_counted(tok):
    config = TokenizationConfig(max_seq_len=32, eval_fraction=0.5)
    rows = mixed_rows(10) + [chat("Q?", "A" * 100, 700)]
    result = tokenize_corpus(clean_frame(rows), tok, config)
    assert result.stats["truncated_examples"] == 1
    assert result.stats["rows_rejected"] == 0
    assert 700 in set(result.train["line"]) | set(result.eval["line"])


def test_long_document_becomes_windows_in_one_split(tok):
    config = TokenizationConfig(max_seq_len=32, eval_fraction=0.5)
    long_doc = text("L" * 200, 900)
    rows = mixed_rows(10) + [long_doc]
    result = tokenize_corpus(clean_frame(rows), tok, config)
    assert result.stats["windowed_documents"] == 1
    split = split_of(long_doc["content_hash"], 0.5, config.split_salt)
    dataset = result.train if split == "train" else result.eval
    windows = [ids for ids, line in zip(dataset["input_ids"], dataset["line"]) if line == 900]
    assert len(windows) == -(-202 // 32)
    assert sum(len(w) for w in windows) == 202  # BOS + 200 bytes + EOS, nothing dropped
    assert result.stats["length_max"] <= 32
    assert result.stats["truncated_examples"] == 0


def test_empty_eval_split_raises(tok):
    config = TokenizationConfig(max_seq_len=64, eval_fraction=1e-9)
    with pytest.raises(ValueError, match="both need at least one"):
        tokenize_corpus(clean_frame(mixed_rows(10)), tok, config)


def test_empty_train_split_raises(tok):
    config = TokenizationConfig(max_seq_len=64, eval_fraction=1 - 1e-9)
    with pytest.raises(ValueError, match=r"left 0 train"):
        tokenize_corpus(clean_frame(mixed_rows(10)), tok, config)


def test_empty_corpus_raises(tok):
    with pytest.raises(ValueError, match="from 0 rows"):
        tokenize_corpus(clean_frame([]), tok, TokenizationConfig())


def test_all_rows_unsupervised_raises(tok):
    rows = [chat("Q" * 100, "A", i) for i in range(10)]
    with pytest.raises(ValueError, match=r"0 train and 0 eval examples from 10 rows \(10 rows had nothing to learn, first: no assistant turn"):
        tokenize_corpus(clean_frame(rows), tok, TokenizationConfig(max_seq_len=16, eval_fraction=0.5))


def test_max_seq_len_is_clamped_to_the_models_context_length():
    config = TokenizationConfig(max_seq_len=4096)
    clamped, warning = clamp_to_context(config, 2048)
    assert clamped.max_seq_len == 2048 and warning == "max_seq_len 4096 exceeds the base model's context length 2048; clamped to 2048"
    assert clamp_to_context(config, 8192) == (config, None)
    assert clamp_to_context(config, None) == (config, None)  # unknown: left as asked


# --- configuration ------------------------------------------------------------------------------

def test_config_defaults_and_validation():
    config = TokenizationConfig()
    assert config.max_seq_len >= 16
    assert (config.eval_fraction, config.split_salt) == (0.1, SALT)
    for bad in ({"max_seq_len": 15}, {"eval_fraction": 0.0}, {"eval_fraction": 1.0},
                {"max_truncated_share": 1.5}, {"max_unsupervised_share": -0.1}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            TokenizationConfig(**bad)
    with pytest.raises(ValidationError):
        config.max_seq_len = 64
    for name, info in TokenizationConfig.model_fields.items():
        assert info.description, name
