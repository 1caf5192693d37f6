"""The chat-template round trip: what training sees decodes back to the rendered conversation."""

import polars as pl
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from assets.foundation.tiny_llama import build_tokenizer
from assets.quality.cleaning import content_hash
from assets.tokenization.chat_format import chat_format
from assets.tokenization.formatting import round_trip_mismatch
from assets.tokenization.tokenizing import TokenizationConfig, round_trip_failures

CHAT = (["system", "user", "assistant"], ["Be brief.", "How do I reset my router?", "Hold the reset button for 10 s."])


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer that loses whitespace: decoding joins words with single spaces."""
    words = {w: i for i, w in enumerate(["[UNK]", "</s>", "<pad>"] + "be brief how do i reset my router hold the button for 10 s . ? user system assistant : ###".split())}
    backend = Tokenizer(models.WordLevel(words, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", unk_token="[UNK]")
    return tokenizer


def test_the_built_in_tokenizer_round_trips_chat_exactly() -> None:
    assert round_trip_mismatch(build_tokenizer(), chat_format(build_tokenizer()), *CHAT, max_seq_len=1024) is None


def test_a_tokenizer_that_changes_text_is_caught_with_the_place() -> None:
    reason = round_trip_mismatch(word_tokenizer(), chat_format(word_tokenizer()), *CHAT, max_seq_len=1024)
    assert reason is not None and reason.startswith("decodes differently from its rendered text at character")


def test_truncated_examples_are_left_to_the_truncation_check() -> None:
    assert round_trip_mismatch(build_tokenizer(), chat_format(build_tokenizer()), *CHAT, max_seq_len=16) is None


def test_failures_name_file_and_line_and_text_rows_are_not_sampled() -> None:
    rows = pl.DataFrame({
        "source_file": ["a.jsonl", "b.jsonl"], "line": [4, 1], "kind": ["chat", "text"],
        "roles": [CHAT[0], ["text"]], "contents": [CHAT[1], ["plain document"]],
        "content_hash": [content_hash(*CHAT), content_hash(["text"], ["plain document"])],
    })
    checked, failures = round_trip_failures(rows, word_tokenizer(), TokenizationConfig())
    assert checked == 1 and len(failures) == 1 and failures[0].startswith("a.jsonl:4: decodes differently")
    assert round_trip_failures(rows, build_tokenizer(), TokenizationConfig()) == (1, [])
