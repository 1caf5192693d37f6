"""Turning records into token ids and labels (assets/tokenization/formatting.py), on the built-in
byte-level tokenizer (one token per UTF-8 byte, then BOS/EOS/PAD and role markers)."""

import pytest

from assets.foundation.tiny_llama import BOS, EOS, build_tokenizer
from assets.tokenization.formatting import (
    FALLBACK_CHAT_TEMPLATE,
    IGNORE_INDEX,
    Example,
    encode_chat,
    encode_record,
    encode_text,
    render_segments,
)

REVERSED_TEMPLATE = (
    "{% for m in messages | reverse %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture
def fresh_tok():
    return build_tokenizer()  # for tests that change the template


def supervised_runs(example: Example) -> list[list[int]]:
    """Contiguous runs of input ids whose label is not IGNORE_INDEX."""
    runs, current = [], []
    for token, label in zip(example.input_ids, example.labels):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs, current = runs + [current], []
    return runs + ([current] if current else [])


def supervised_text(tok, example: Example) -> list[str]:
    return [tok.decode(run) for run in supervised_runs(example)]


# --- chat ---------------------------------------------------------------------------------------

def test_single_turn_masks_everything_but_the_answer(tok):
    example = encode_chat(tok, ["user", "assistant"], ["Why?", "Because."], max_seq_len=512)
    assert supervised_text(tok, example) == ["Because." + EOS]
    # Labels equal the input ids where supervised and IGNORE_INDEX elsewhere, nothing else.
    for token, label in zip(example.input_ids, example.labels):
        assert label in (token, IGNORE_INDEX)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Why?"}], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert example.labels[n_prompt:] == example.input_ids[n_prompt:]
    assert not example.truncated


def test_chat_ids_equal_the_template_rendering(tok):
    roles, contents = ["system", "user", "assistant"], ["Be kind.", "Hi", "Hello!"]
    example = encode_chat(tok, roles, contents, max_seq_len=512)
    rendered = tok.apply_chat_template([{"role": r, "content": c} for r, c in zip(roles, contents)], tokenize=False)
    assert tok.decode(example.input_ids) == rendered
    assert example.input_ids[0] == tok.bos_token_id


def test_chat_example_ends_with_supervised_eos(tok):
    example = encode_chat(tok, ["user", "assistant"], ["Q", "A"], max_seq_len=512)
    assert example.input_ids[-1] == tok.eos_token_id
    assert example.labels[-1] == tok.eos_token_id
    assert example.input_ids.count(tok.eos_token_id) == 1  # not appended a second time


def test_multi_turn_supervises_both_assistant_turns(tok):
    roles = ["user", "assistant", "user", "assistant"]
    contents = ["First question?", "First answer.", "Second question?", "Second\nanswer: 点火 🔥"]
    example = encode_chat(tok, roles, contents, max_seq_len=512)
    assert supervised_text(tok, example) == ["First answer." + EOS, "Second\nanswer: 点火 🔥" + EOS]
    # The user's second question sits between the runs and is not supervised.
    unsupervised = tok.decode([t for t, l in zip(example.input_ids, example.labels) if l == IGNORE_INDEX])
    assert "Second question?" in unsupervised and "First question?" in unsupervised
    assert "answer" not in unsupervised


def test_system_message_is_not_supervised(tok):
    example = encode_chat(tok, ["system", "user", "assistant"], ["SYSTEM RULES", "Q", "A"], max_seq_len=512)
    assert supervised_text(tok, example) == ["A" + EOS]
    unsupervised = tok.decode([t for t, l in zip(example.input_ids, example.labels) if l == IGNORE_INDEX])
    assert "SYSTEM RULES" in unsupervised


def test_supervised_tokens_count(tok):
    example = encode_chat(tok, ["user", "assistant"], ["Q", "Answer"], max_seq_len=512)
    assert example.supervised_tokens == len("Answer") + 1  # content bytes + EOS
    assert Example([1, 2, 3], [1, 2, 3]).supervised_tokens == 2  # the first label never counts
    assert Example([1, 2], [IGNORE_INDEX, IGNORE_INDEX]).supervised_tokens == 0


def test_truncation_at_max_seq_len(tok):
    example = encode_chat(tok, ["user", "assistant"], ["Q" * 10, "A" * 100], max_seq_len=40)
    assert example.truncated
    assert len(example.input_ids) == len(example.labels) == 40
    full = encode_chat(tok, ["user", "assistant"], ["Q" * 10, "A" * 100], max_seq_len=10_000)
    assert not full.truncated
    assert example.input_ids == full.input_ids[:40] and example.labels == full.labels[:40]


def test_exactly_max_seq_len_is_not_truncated(tok):
    full = encode_chat(tok, ["user", "assistant"], ["Q", "A"], max_seq_len=10_000)
    exact = encode_chat(tok, ["user", "assistant"], ["Q", "A"], max_seq_len=len(full.input_ids))
    assert not exact.truncated and exact == full
    shorter = encode_chat(tok, ["user", "assistant"], ["Q", "A"], max_seq_len=len(full.input_ids) - 1)
    assert shorter.truncated and shorter.input_ids[-1] != tok.eos_token_id


def test_prompt_longer_than_max_seq_len_leaves_nothing_supervised(tok):
    example = encode_chat(tok, ["user", "assistant"], ["Q" * 100, "A"], max_seq_len=32)
    assert example.truncated
    assert example.supervised_tokens == 0
    assert set(example.labels) == {IGNORE_INDEX}


def test_instruction_kind_behaves_like_chat(tok):
    roles, contents = ["user", "assistant"], ["Translate.\n\nBonjour", "Hello"]
    [instruction] = encode_record(tok, "instruction", roles, contents, max_seq_len=512)
    [chat] = encode_record(tok, "chat", roles, contents, max_seq_len=512)
    assert instruction == chat
    assert supervised_text(tok, instruction) == ["Hello" + EOS]


def test_render_segments_alternate_and_cover_the_rendering(tok):
    roles = ["system", "user", "assistant", "user", "assistant"]
    contents = ["S", "Q1", "A1", "Q2", "A2"]
    segments = render_segments(tok, roles, contents)
    assert [s for _, s in segments] == [False, True, False, True]
    assert [t for t, s in segments if s] == ["A1" + EOS, "A2" + EOS]
    full = tok.apply_chat_template([{"role": r, "content": c} for r, c in zip(roles, contents)], tokenize=False)
    assert "".join(t for t, _ in segments) == full


def test_trailing_user_turn_is_unsupervised_and_eos_is_added(tok):
    example = encode_chat(tok, ["user", "assistant", "user"], ["Q1", "A1", "Q2"], max_seq_len=512)
    assert example.input_ids[-1] == tok.eos_token_id
    runs = supervised_text(tok, example)
    assert runs[0] == "A1" + EOS
    assert all("Q2" not in run for run in runs)


def test_whitespace_in_turns_is_kept_verbatim(tok):
    example = encode_chat(tok, ["user", "assistant"], ["tabs\tand newlines\n", "  spaced  "], max_seq_len=512)
    assert supervised_text(tok, example) == ["  spaced  " + EOS]


# --- fallback and broken templates -------------------------------------------------------------

def test_tokenizer_without_template_uses_fallback(fresh_tok):
    fresh_tok.chat_template = None
    roles = ["system", "user", "assistant", "user", "assistant"]
    contents = ["Sys", "Q1", "A1", "Q2", "A2"]
    example = encode_chat(fresh_tok, roles, contents, max_seq_len=512)
    assert supervised_text(fresh_tok, example) == ["A1" + EOS, "A2" + EOS]
    text = fresh_tok.decode(example.input_ids)
    assert text.startswith("### System:\nSys")
    assert "### User:\nQ1" in text and "### Assistant:\nA1" + EOS in text
    assert text.endswith("### Assistant:\nA2" + EOS)
    assert BOS not in text
    expected = fresh_tok.apply_chat_template(
        [{"role": r, "content": c} for r, c in zip(roles, contents)],
        chat_template=FALLBACK_CHAT_TEMPLATE, tokenize=False,
    )
    assert text == expected


def test_fallback_template_is_prefix_consistent(fresh_tok):
    fresh_tok.chat_template = None
    segments = render_segments(fresh_tok, ["user", "assistant"], ["Q", "A"])
    assert segments == [("### User:\nQ\n\n### Assistant:\n", False), ("A" + EOS, True)]


def test_fallback_template_separates_every_turn_with_a_blank_line(fresh_tok):
    fresh_tok.chat_template = None
    segments = render_segments(fresh_tok, ["user", "assistant", "user", "assistant"], ["Q1", "A1", "Q2", "A2"])
    assert segments[2] == ("\n\n### User:\nQ2\n\n### Assistant:\n", False)


def test_non_prefix_consistent_template_raises(fresh_tok):
    fresh_tok.chat_template = REVERSED_TEMPLATE
    with pytest.raises(ValueError, match="prefix-consistent"):
        encode_chat(fresh_tok, ["user", "assistant"], ["Q", "A"], max_seq_len=512)


def test_template_that_rewrites_earlier_turns_raises(fresh_tok):
    # Earlier turns rendered differently once a later one exists (e.g. only the last answer shown).
    fresh_tok.chat_template = (
        "{% for m in messages %}{% if m['role'] != 'assistant' or loop.last %}"
        "{{ m['role'] }}: {{ m['content'] }}\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    with pytest.raises(ValueError, match="prefix-consistent"):
        render_segments(fresh_tok, ["user", "assistant", "user", "assistant"], ["Q1", "A1", "Q2", "A2"])


# --- plain text ---------------------------------------------------------------------------------

def test_text_is_bos_text_eos_all_supervised(tok):
    [example] = encode_text(tok, "Hello, wörld!", max_seq_len=512)
    expected = [tok.bos_token_id] + list("Hello, wörld!".encode()) + [tok.eos_token_id]
    assert example.input_ids == expected
    assert example.labels == expected
    assert not example.truncated
    assert tok.decode(example.input_ids) == BOS + "Hello, wörld!" + EOS


def test_empty_text_still_gives_bos_eos(tok):
    [example] = encode_text(tok, "", max_seq_len=16)
    assert example.input_ids == [tok.bos_token_id, tok.eos_token_id]
    assert example.supervised_tokens == 1


def test_text_exactly_max_seq_len_is_one_window(tok):
    [example] = encode_text(tok, "x" * 14, max_seq_len=16)
    assert len(example.input_ids) == 16


@pytest.mark.parametrize(("n_bytes", "max_seq_len"), [(15, 16), (50, 16), (100, 32), (1000, 64), (1001, 64), (2, 16)])
def test_long_text_is_cut_into_near_equal_windows(tok, n_bytes, max_seq_len):
    text = "".join(chr(ord("a") + i % 26) for i in range(n_bytes))
    windows = encode_text(tok, text, max_seq_len=max_seq_len)
    full = [tok.bos_token_id] + list(text.encode()) + [tok.eos_token_id]
    lengths = [len(w.input_ids) for w in windows]
    assert len(windows) == -(-len(full) // max_seq_len)  # as few windows as possible
    assert all(length <= max_seq_len for length in lengths)
    assert all(length >= 2 for length in lengths)
    assert max(lengths) - min(lengths) <= 1  # near-equal
    assert [t for w in windows for t in w.input_ids] == full  # nothing lost or repeated
    assert all(w.labels == w.input_ids and not w.truncated for w in windows)
    assert windows[0].input_ids[0] == tok.bos_token_id
    assert windows[-1].input_ids[-1] == tok.eos_token_id


def test_text_record_joins_contents_with_blank_line(tok):
    [example] = encode_record(tok, "text", ["text", "text"], ["one", "two"], max_seq_len=512)
    assert tok.decode(example.input_ids) == BOS + "one\n\ntwo" + EOS


def test_text_record_may_return_several_examples(tok):
    examples = encode_record(tok, "text", ["text"], ["z" * 100], max_seq_len=32)
    assert len(examples) == 4
