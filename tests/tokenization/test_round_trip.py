"""The chat-template round trip: what training sees decodes back to the rendered conversation."""

import polars as pl
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from assets.foundation.tiny_llama import build_tokenizer
from assets.models.chat_format import chat_format
from assets.quality.cleaning import content_hash
from assets.settings.tokenization import TokenizationConfig
from assets.tokenization.formatting import round_trip_mismatch, text_difference
from assets.tokenization.tokenizing import RoundTrip, round_trip

CHAT = (["system", "user", "assistant"], ["Be brief.", "How do I reset my router?", "Hold the reset button for 10 s."])


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer that loses whitespace: decoding joins words with single spaces."""
    text = "be brief how do i reset my router hold the button for 10 s . ? user system assistant : ###"
    words = {w: i for i, w in enumerate(["[UNK]", "</s>", "<pad>"] + text.split())}
    backend = Tokenizer(models.WordLevel(words, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", unk_token="[UNK]")
    return tokenizer


def test_the_built_in_tokenizer_round_trips_chat_exactly() -> None:
    assert round_trip_mismatch(build_tokenizer(), chat_format(build_tokenizer()), *CHAT, max_seq_len=1024) is None


def test_a_tokenizer_that_changes_the_answers_is_caught_with_the_place() -> None:
    reason = round_trip_mismatch(word_tokenizer(), chat_format(word_tokenizer()), *CHAT, max_seq_len=1024)
    assert reason == ("assistant turn 1: supervised tokens decode to '[UNK] the reset button for 10 s . </s>', "
                      "not the answer 'Hold the reset button for 10 s.' and its end-of-turn token")
    # Where the text changes is reported beside it (the tokenizer's own normalisation).
    assert text_difference(word_tokenizer(), chat_format(word_tokenizer()), *CHAT).startswith("decodes differently from its rendered text at character 4")
    assert text_difference(build_tokenizer(), chat_format(build_tokenizer()), *CHAT) is None


def merging_tokenizer() -> PreTrainedTokenizerFast:
    """The built-in byte tokenizer plus one BPE merge, ":H", that crosses the prompt/answer boundary
    of a template writing `assistant:` right before the answer."""
    from tokenizers import decoders

    base = build_tokenizer()
    vocab = {token: i for token, i in base.get_vocab().items() if i < 256}
    vocab[":H"] = len(base)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[(":", "H")]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>")
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] + ':' + m['content'] + eos_token }}{% endfor %}"
    return tokenizer


def test_a_token_straddling_the_prompt_and_the_answer_is_caught() -> None:
    tokenizer = merging_tokenizer()
    reason = round_trip_mismatch(tokenizer, chat_format(tokenizer), ["user", "assistant"], ["Q", "Hi"], max_seq_len=64)
    assert reason == "assistant turn 1: supervised tokens decode to ':Hi</s>', not the answer 'Hi' and its end-of-turn token"
    assert round_trip_mismatch(tokenizer, chat_format(tokenizer), ["user", "assistant"], ["Q", "Yo"], max_seq_len=64) is None


def test_truncated_examples_are_left_to_the_truncation_check() -> None:
    assert round_trip_mismatch(build_tokenizer(), chat_format(build_tokenizer()), *CHAT, max_seq_len=16) is None


def test_failures_name_file_and_line_and_text_rows_are_not_sampled() -> None:
    rows = pl.DataFrame({
        "source_file": ["a.jsonl", "b.jsonl"], "line": [4, 1], "kind": ["chat", "text"],
        "roles": [CHAT[0], ["text"]], "contents": [CHAT[1], ["plain document"]],
        "content_hash": [content_hash(*CHAT), content_hash(["text"], ["plain document"])],
    })
    trip = round_trip(rows, word_tokenizer(), TokenizationConfig())
    assert trip.checked == 1 and len(trip.failures) == 1 and trip.failures[0].startswith("a.jsonl:4: assistant turn 1")
    assert trip.text_changes[0].startswith("a.jsonl:4: decodes differently")
    assert round_trip(rows, build_tokenizer(), TokenizationConfig()) == RoundTrip(1, [], [])
