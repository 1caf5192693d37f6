"""Turning records into token ids and labels (assets/tokenization/formatting.py, chat_format.py), on
the built-in byte-level tokenizer (one token per UTF-8 byte, then BOS/EOS/PAD and role markers) with
its own template and with templates shaped like published ones that are not prefix-consistent."""

import pytest

from assets.foundation.tiny_llama import BOS, EOS, build_tokenizer
from assets.models.batches import IGNORE_INDEX
from assets.models.chat_format import FALLBACK_CHAT_TEMPLATE, TEMPLATE_DATE, chat_format, fold_system, render_with_spans
from assets.tokenization import formatting
from assets.tokenization.formatting import Example, encode_record, encode_text, round_trip_mismatch, supervised_runs

REVERSED_TEMPLATE = (
    "{% for m in messages | reverse %}{{ m['role'] }}: {{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
# Phi-3's shape: every turn ends with <|end|>, and EOS is appended only when no generation prompt is asked.
PHI3_LIKE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)
# Gemma 2's shape: a system role is refused; roles must alternate.
NO_SYSTEM = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{{ '<|' + m['role'] + '|>\\n' + m['content'] | trim + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
# Qwen3's shape: reasoning before </think> is dropped from the rendered answer.
DROPS_REASONING = (
    "{% for m in messages %}{% set c = m['content'] %}{% if m['role'] == 'assistant' and '</think>' in c %}"
    "{% set c = c.split('</think>')[-1].lstrip('\\n') %}{% endif %}"
    "{{ '<|' + m['role'] + '|>\\n' + c + '<|end|>\\n' }}{% endfor %}"
)
# Llama 2's shape: a space, then EOS, after each answer.
SPACE_THEN_EOS = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
                  "{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}")
DATED = "{{ 'Today: ' + date_string + '\\n' }}{% for m in messages %}{{ m['content'] + '<|end|>' }}{% endfor %}"


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def with_template(template):
    tokenizer = build_tokenizer()
    tokenizer.chat_template = template
    return tokenizer


def encode(tok, roles, contents, max_seq_len=512):
    """The row's examples (asserting it was not rejected)."""
    row = formatting.encode_chat(tok, chat_format(tok), roles, contents, max_seq_len)
    assert row.rejected is None, row.rejected
    return row.examples


def one(tok, roles, contents, max_seq_len=512) -> Example:
    [example] = encode(tok, roles, contents, max_seq_len)
    return example


def supervised_text(tok, example: Example) -> list[str]:
    return [tok.decode(run) for run in supervised_runs(example.input_ids, example.labels)]


def unsupervised_text(tok, example: Example) -> str:
    return tok.decode([t for t, label in zip(example.input_ids, example.labels) if label == IGNORE_INDEX])


# --- the built-in template ----------------------------------------------------------------------

def test_single_turn_masks_everything_but_the_answer(tok):
    example = one(tok, ["user", "assistant"], ["Why?", "Because."])
    assert supervised_text(tok, example) == ["Because." + EOS]
    for token, label in zip(example.input_ids, example.labels):
        assert label in (token, IGNORE_INDEX)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Why?"}], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert example.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert example.labels[n_prompt:] == example.input_ids[n_prompt:]
    assert not example.truncated


def test_chat_ids_equal_the_template_rendering(tok):
    roles, contents = ["system", "user", "assistant"], ["Be kind.", "Hi", "Hello!"]
    example = one(tok, roles, contents)
    rendered = tok.apply_chat_template([{"role": r, "content": c} for r, c in zip(roles, contents)], tokenize=False)
    assert tok.decode(example.input_ids) == rendered
    assert example.input_ids[0] == tok.bos_token_id and example.input_ids.count(tok.bos_token_id) == 1


def test_chat_example_ends_with_supervised_end_of_turn_once(tok):
    example = one(tok, ["user", "assistant"], ["Q", "A"])
    assert example.input_ids[-1] == example.labels[-1] == tok.eos_token_id
    assert example.input_ids.count(tok.eos_token_id) == 1  # not appended a second time


def test_multi_turn_supervises_both_assistant_turns(tok):
    roles = ["user", "assistant", "user", "assistant"]
    contents = ["First question?", "First answer.", "Second question?", "Second\nanswer: 点火 🔥"]
    example = one(tok, roles, contents)
    assert supervised_text(tok, example) == ["First answer." + EOS, "Second\nanswer: 点火 🔥" + EOS]
    unsupervised = unsupervised_text(tok, example)
    assert "Second question?" in unsupervised and "First question?" in unsupervised
    assert "answer" not in unsupervised


def test_an_answer_repeating_the_question_is_found_in_its_own_turn(tok):
    example = one(tok, ["user", "assistant"], ["Say yes", "yes"])
    assert supervised_text(tok, example) == ["yes" + EOS]
    assert "Say yes" in unsupervised_text(tok, example)


def test_system_message_is_not_supervised(tok):
    example = one(tok, ["system", "user", "assistant"], ["SYSTEM RULES", "Q", "A"])
    assert supervised_text(tok, example) == ["A" + EOS]
    assert "SYSTEM RULES" in unsupervised_text(tok, example)


def test_supervised_tokens_count(tok):
    example = one(tok, ["user", "assistant"], ["Q", "Answer"])
    assert example.supervised_tokens == len("Answer") + 1  # content bytes + end of turn
    assert Example([1, 2, 3], [1, 2, 3]).supervised_tokens == 2  # the first label never counts
    assert Example([1, 2], [IGNORE_INDEX, IGNORE_INDEX]).supervised_tokens == 0


def test_trailing_user_turn_is_unsupervised_and_nothing_is_appended(tok):
    example = one(tok, ["user", "assistant", "user"], ["Q1", "A1", "Q2"])
    assert supervised_text(tok, example) == ["A1" + EOS]
    assert tok.decode(example.input_ids).endswith("Q2<|end|>\n")


def test_whitespace_in_turns_is_kept_verbatim(tok):
    example = one(tok, ["user", "assistant"], ["tabs\tand newlines\n", "  spaced  "])
    assert supervised_text(tok, example) == ["  spaced  " + EOS]


def test_instruction_kind_behaves_like_chat(tok):
    roles, contents = ["user", "assistant"], ["Translate.\n\nBonjour", "Hello"]
    fmt = chat_format(tok)
    instruction = encode_record(tok, fmt, "instruction", roles, contents, max_seq_len=512)
    chat = encode_record(tok, fmt, "chat", roles, contents, max_seq_len=512)
    assert instruction == chat
    assert supervised_text(tok, instruction.examples[0]) == ["Hello" + EOS]


def test_the_built_in_template_is_probed_right(tok):
    fmt = chat_format(tok)
    assert (fmt.source, fmt.accepts_system, fmt.end_of_turn, fmt.adds_bos) == ("model", True, EOS, False)
    assert fmt.stop_token_ids(tok.eos_token_id) == [tok.eos_token_id]


# --- long conversations -------------------------------------------------------------------------

def test_a_long_conversation_is_split_at_turns_and_each_part_keeps_the_system_prompt(tok):
    roles = ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    contents = ["RULES", "q1" * 20, "a1" * 20, "q2" * 20, "a2" * 20, "q3", "a3"]
    whole = one(tok, roles, contents, max_seq_len=10_000)
    parts = encode(tok, roles, contents, max_seq_len=100)
    assert len(parts) == 3 and not any(p.truncated for p in parts)
    assert all(len(p.input_ids) <= 100 and tok.decode(p.input_ids).startswith(BOS + "<|system|>\nRULES") for p in parts)
    assert [t for p in parts for t in supervised_text(tok, p)] == supervised_text(tok, whole)


def test_an_exchange_longer_than_max_seq_len_alone_is_cut_and_marked(tok):
    [example] = encode(tok, ["user", "assistant"], ["Q" * 10, "A" * 100], max_seq_len=40)
    [full] = encode(tok, ["user", "assistant"], ["Q" * 10, "A" * 100], max_seq_len=10_000)
    assert example.truncated and len(example.input_ids) == len(example.labels) == 40
    assert example.input_ids == full.input_ids[:40] and example.labels == full.labels[:40]


def test_exactly_max_seq_len_is_not_truncated(tok):
    full = one(tok, ["user", "assistant"], ["Q", "A"], max_seq_len=10_000)
    assert one(tok, ["user", "assistant"], ["Q", "A"], max_seq_len=len(full.input_ids)) == full
    shorter = one(tok, ["user", "assistant"], ["Q", "A"], max_seq_len=len(full.input_ids) - 1)
    assert shorter.truncated and shorter.input_ids[-1] != tok.eos_token_id


def test_a_prompt_longer_than_max_seq_len_rejects_the_row_with_its_reason(tok):
    row = formatting.encode_chat(tok, chat_format(tok), ["user", "assistant"], ["Q" * 100, "A"], 32)
    assert row.examples == [] and row.exchanges_dropped == 1
    assert row.rejected == "no assistant turn starts within max_seq_len (32 tokens)"


def test_a_later_exchange_survives_when_an_earlier_prompt_is_too_long(tok):
    parts = encode(tok, ["user", "assistant", "user", "assistant"], ["Q" * 100, "A", "short", "fine"], max_seq_len=40)
    assert [supervised_text(tok, p) for p in parts] == [["fine" + EOS]]


# --- templates as they are published ------------------------------------------------------------

def test_a_template_that_appends_eos_outside_generation_is_handled():
    tok = with_template(PHI3_LIKE)
    fmt = chat_format(tok)
    assert fmt.end_of_turn == "<|end|>"
    example = one(tok, ["user", "assistant", "user", "assistant"], ["Q1", "A1", "Q2", "A2"])
    assert supervised_text(tok, example) == ["A1<|end|>", "A2<|end|>"]
    assert tok.decode(example.input_ids).endswith("A2<|end|>\n" + EOS)  # EOS rendered, not supervised
    assert fmt.stop_token_ids(tok.eos_token_id) == [tok.eos_token_id, tok.convert_tokens_to_ids("<|end|>")]


def test_a_reversed_template_still_supervises_exactly_the_answers():
    tok = with_template(REVERSED_TEMPLATE)
    example = one(tok, ["user", "assistant", "user", "assistant"], ["Q1", "A1", "Q2", "A2"])
    assert sorted(supervised_text(tok, example)) == ["A1<|end|>", "A2<|end|>"]


def test_a_template_refusing_the_system_role_gets_it_folded_into_the_first_user_turn():
    tok = with_template(NO_SYSTEM)
    fmt = chat_format(tok)
    assert not fmt.accepts_system
    row = formatting.encode_chat(tok, fmt, ["system", "user", "assistant"], ["Be brief.", "Q", "A"], 512)
    assert row.system_folded and row.rejected is None
    assert "<|user|>\nBe brief.\n\nQ<|end|>" in tok.decode(row.examples[0].input_ids)
    assert supervised_text(tok, row.examples[0]) == ["A<|end|>"]


# Mistral v0.3's shape: the system prompt is written only into a last user turn, so a conversation
# that ends with an answer loses it.
DROPS_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' }}{% if loop.last and messages[0]['role'] == 'system' %}"
    "{{ messages[0]['content'] + '\n\n' }}{% endif %}{{ m['content'] + ' [/INST]' }}"
    "{% elif m['role'] == 'assistant' %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
)


def test_a_template_that_drops_the_system_prompt_gets_it_folded():
    tok = with_template(DROPS_SYSTEM)
    fmt = chat_format(tok)
    assert not fmt.accepts_system
    row = formatting.encode_chat(tok, fmt, ["system", "user", "assistant"], ["Be brief.", "Q", "A"], 512)
    assert row.system_folded and tok.decode(row.examples[0].input_ids) == "[INST] Be brief.\n\nQ [/INST]A" + EOS


def test_a_conversation_whose_shape_loses_the_system_prompt_gets_it_folded():
    # Accepted at the probe (one exchange), dropped in longer conversations.
    tok = with_template("{% for m in messages %}{% if m['role'] != 'system' or messages | length <= 3 %}"
                        "{{ m['role'] + ': ' + m['content'] + eos_token }}{% endif %}{% endfor %}")
    fmt = chat_format(tok)
    assert fmt.accepts_system
    roles, contents = ["system", "user", "assistant", "user", "assistant"], ["Be brief.", "Q1", "A1", "Q2", "A2"]
    row = formatting.encode_chat(tok, fmt, roles, contents, 512)
    assert row.system_folded and "user: Be brief.\n\nQ1" in tok.decode(row.examples[0].input_ids)
    assert not formatting.encode_chat(tok, fmt, roles[:3], contents[:3], 512).system_folded


def test_each_part_of_a_split_conversation_keeps_a_folded_system_prompt():
    tok = with_template(NO_SYSTEM)
    roles = ["system", "user", "assistant", "user", "assistant"]
    row = formatting.encode_chat(tok, chat_format(tok), roles, ["Be brief.", "q" * 30, "a" * 30, "r" * 30, "b" * 30], 90)
    assert len(row.examples) == 2 and row.system_folded
    assert all("<|user|>\nBe brief.\n\n" in tok.decode(e.input_ids) for e in row.examples)


def test_fold_system_makes_a_user_turn_when_none_leads():
    assert fold_system([{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}]) == [
        {"role": "user", "content": "S"}, {"role": "assistant", "content": "A"}]


def test_a_conversation_the_template_refuses_is_rejected_with_the_templates_message():
    tok = with_template(NO_SYSTEM)
    row = formatting.encode_chat(tok, chat_format(tok), ["user", "user", "assistant"], ["Q", "Q again", "A"], 512)
    assert row.examples == []
    assert row.rejected == "the chat template refused this conversation: Conversation roles must alternate user/assistant/user/assistant/..."


def test_a_template_that_drops_reasoning_supervises_what_it_renders():
    tok = with_template(DROPS_REASONING)
    example = one(tok, ["user", "assistant"], ["Q", "<think>\nmull it over\n</think>\n\nThe answer."])
    assert supervised_text(tok, example) == ["The answer.<|end|>"]


def test_whitespace_between_an_answer_and_its_end_of_turn_is_supervised_with_it():
    tok = with_template(SPACE_THEN_EOS)
    example = one(tok, ["user", "assistant"], ["Q", "A"])
    assert supervised_text(tok, example) == ["A " + EOS]


def test_the_date_a_template_prints_is_fixed():
    tok = with_template(DATED)
    text, _ = render_with_spans(tok, chat_format(tok), [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}])
    assert text.startswith(f"Today: {TEMPLATE_DATE}\n")


def test_a_content_holding_a_control_token_is_rejected(tok):
    row = formatting.encode_chat(tok, chat_format(tok), ["user", "assistant"], ["Q", "A<|end|>\n<|user|>\nfake turn"], 512)
    assert row.rejected == "turn 2 (assistant) contains the tokenizer's control token '<|end|>'"


def test_a_tokenizer_that_adds_bos_gets_exactly_one():
    from tokenizers import processors

    tok = with_template("{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}")  # renders no BOS
    tok._tokenizer.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, tok.bos_token_id)])
    assert chat_format(tok).adds_bos
    example = one(tok, ["user", "assistant"], ["Q", "A"])
    assert example.input_ids[:2] == [tok.bos_token_id, ord("Q")] and example.labels[0] == IGNORE_INDEX
    example = one(with_template("{{ bos_token }}" + tok.chat_template), ["user", "assistant"], ["Q", "A"])
    assert example.input_ids.count(tok.bos_token_id) == 1


# --- fallback template --------------------------------------------------------------------------

def test_tokenizer_without_template_uses_fallback():
    tok = with_template(None)
    roles = ["system", "user", "assistant", "user", "assistant"]
    contents = ["Sys", "Q1", "A1", "Q2", "A2"]
    example = one(tok, roles, contents)
    assert supervised_text(tok, example) == ["A1" + EOS, "A2" + EOS]
    text = tok.decode(example.input_ids)
    assert text.startswith("### System:\nSys") and BOS not in text
    assert "### User:\nQ1" in text and "### Assistant:\nA1" + EOS in text
    assert text == tok.apply_chat_template(
        [{"role": r, "content": c} for r, c in zip(roles, contents)], chat_template=FALLBACK_CHAT_TEMPLATE, tokenize=False)
    assert chat_format(tok).source == "fallback"


# --- round trip ---------------------------------------------------------------------------------

@pytest.mark.parametrize("template", [None, PHI3_LIKE, REVERSED_TEMPLATE, SPACE_THEN_EOS])
def test_round_trip_passes_for_templates_handled_right(template):
    tok = build_tokenizer() if template is None else with_template(template)
    assert round_trip_mismatch(tok, chat_format(tok), ["user", "assistant", "user", "assistant"], ["Q1", "A1", "Q2", "A2"], 512) is None


# --- plain text ---------------------------------------------------------------------------------

def test_text_is_bos_text_eos_all_supervised(tok):
    [example] = encode_text(tok, "Hello, wörld!", max_seq_len=512, bos_id=tok.bos_token_id)
    expected = [tok.bos_token_id] + list("Hello, wörld!".encode()) + [tok.eos_token_id]
    assert example.input_ids == expected
    assert example.labels == expected
    assert not example.truncated
    assert tok.decode(example.input_ids) == BOS + "Hello, wörld!" + EOS


def test_control_token_text_in_a_document_stays_text(tok):
    [example] = encode_text(tok, "a<|end|>b", max_seq_len=512, bos_id=tok.bos_token_id)
    assert example.input_ids == [tok.bos_token_id, *b"a<|end|>b", tok.eos_token_id]


def test_empty_text_still_gives_bos_eos(tok):
    [example] = encode_text(tok, "", max_seq_len=16, bos_id=tok.bos_token_id)
    assert example.input_ids == [tok.bos_token_id, tok.eos_token_id]
    assert example.supervised_tokens == 1


def test_text_exactly_max_seq_len_is_one_window(tok):
    [example] = encode_text(tok, "x" * 14, max_seq_len=16, bos_id=tok.bos_token_id)
    assert len(example.input_ids) == 16


@pytest.mark.parametrize(("n_bytes", "max_seq_len"), [(15, 16), (50, 16), (100, 32), (1000, 64), (1001, 64), (2, 16)])
def test_long_text_is_cut_into_near_equal_windows(tok, n_bytes, max_seq_len):
    text = "".join(chr(ord("a") + i % 26) for i in range(n_bytes))
    windows = encode_text(tok, text, max_seq_len=max_seq_len, bos_id=tok.bos_token_id)
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


def test_a_document_starts_with_bos_only_where_the_family_uses_one(tok):
    assert chat_format(tok).document_bos == tok.bos_token_id  # the built-in template writes BOS
    no_bos = with_template("{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}")  # like Phi-3, Qwen
    fmt = chat_format(no_bos)
    assert fmt.document_bos is None and not fmt.adds_bos and not fmt.renders_bos
    [example] = encode_record(no_bos, fmt, "text", ["text"], ["hi"], max_seq_len=64).examples
    assert example.input_ids == [*b"hi", no_bos.eos_token_id]


def test_text_record_joins_contents_with_blank_line(tok):
    row = encode_record(tok, chat_format(tok), "text", ["text", "text"], ["one", "two"], max_seq_len=512)
    assert tok.decode(row.examples[0].input_ids) == BOS + "one\n\ntwo" + EOS


def test_text_record_may_return_several_examples(tok):
    assert len(encode_record(tok, chat_format(tok), "text", ["text"], ["z" * 100], max_seq_len=32).examples) == 4
