"""Tokens derived from an encoding made already (assets/tokenization/prefixes.py) against real
encodings: the parts a long conversation is split into (its system prompt and exchanges a..b), as
prefixes of the whole conversation's encoding or joined from two pieces of it, on the built-in and
seven family tokenizers; and the fallback where the condition fails, with the split's output
still the per-row reference's."""

import random
import sys
from pathlib import Path

import pytest

from assets.foundation.tiny_llama import build_tokenizer
from assets.models.chat_format import chat_format, fold_system
from assets.tokenization import encoding as encoding_module
from assets.tokenization.encoding import arrays, fast_backend, renderer
from assets.tokenization.formatting import exchanges_of
from assets.tokenization.prefixes import Reference, edge_tokens
from pipelines import samples

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "families"))
from family_specs import FAMILIES  # noqa: E402
from family_tokenizers import build_tokenizer as build_family  # noqa: E402

FAMILY_KEYS = ["llama2", "llama3", "mistral", "qwen2", "qwen3", "gemma2", "phi3"]


def tokenizer_of(name: str):
    return build_tokenizer() if name == "builtin" else build_family(FAMILIES[name])


def conversations(seed: int, n: int) -> list[list[dict[str, str]]]:
    """Support tickets strung together (a system prompt, several exchanges), some answers with a
    reasoning block, some turns repeated word for word, one with text outside ASCII."""
    rng = random.Random(seed)
    chats = [samples._support_record(rng, rng.random() < 0.5)["messages"] for _ in range(20)]
    out = []
    for number in range(n):
        messages = list(rng.choice(chats))
        for _ in range(rng.choice((1, 2, 4))):
            messages += [m for m in rng.choice(chats) if m["role"] != "system"]
        if number % 5 == 1:
            messages += [{"role": "user", "content": "Why?"}, {"role": "assistant", "content": "<think>\nweigh it\n</think>\n\nBecause."}]
        if number % 7 == 2:
            messages += messages[-2:]  # the last exchange again, verbatim
        if number % 4 == 3:
            messages += [{"role": "user", "content": "Ça va ? 日本語 😀"}, {"role": "assistant", "content": "Très bien — ありがとう 👍"}]
        out.append(messages)
    return out


def check_parts(tokenizer) -> dict[str, int]:
    """Every split candidate (system + exchanges a..b) of a few conversations, derived from the
    whole conversation's encoding and from the encoding of the longest candidate starting at a (a
    split step's reference): the derived tokens and offsets equal a real encoding wherever they are
    derived. Returns how many were derived, and how."""
    fmt = chat_format(tokenizer)
    render = renderer(tokenizer, fmt)
    edges = edge_tokens(tokenizer)
    assert edges is not None
    seen = {"prefix": 0, "joined": 0, "none": 0, "step prefix": 0, "step none": 0}

    def check(derived, text: str) -> None:
        ids, offsets = encode(tokenizer, text)
        assert derived[0].tolist() == ids, text
        assert [tuple(o) for o in derived[1].tolist()] == offsets, text

    for messages in conversations(seed=7, n=12):
        folded = "system" in [m["role"] for m in messages] and not fmt.accepts_system
        whole = render(fold_system(messages) if folded else messages)
        if whole is None:
            continue
        reference = Reference(whole, *arrays(encode_one(tokenizer, whole)), edges)
        system, exchanges = exchanges_of(messages)

        def rendering(a: int, b: int) -> str | None:
            part = system + [m for e in exchanges[a:b] for m in e]
            return render(fold_system(part) if folded else part)

        for a in range(len(exchanges)):
            longest = rendering(a, len(exchanges))
            step = None if longest is None else Reference(longest, *arrays(encode_one(tokenizer, longest)), edges)
            for b in range(a + 1, len(exchanges) + 1):
                text = rendering(a, b)
                if text is None:
                    continue
                derived = reference.tokens(text)
                if derived is None:
                    seen["none"] += 1
                else:
                    seen["prefix" if reference.prefix(text) is not None else "joined"] += 1
                    check(derived, text)
                count = None if step is None or b == len(exchanges) else step.prefix(text)
                if count is None:
                    seen["step none"] += b < len(exchanges)
                else:
                    seen["step prefix"] += 1
                    check((step.ids[:count], step.offsets[:count]), text)
    return seen


def encode_one(tokenizer, text: str):
    backend = fast_backend(tokenizer)
    return encoding_module._encode_batch(backend, [text], tokenizer.split_special_tokens, offsets=True)[0]


def encode(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    result = encode_one(tokenizer, text)
    return result.ids, result.offsets


# What the tokenizers and their templates allow (each count is also checked token by token):
# joins where later turns render as they do in the whole conversation (Llama 3, ChatML, the
# built-in; Qwen3 where no reasoning block differs); none where the system prompt goes elsewhere
# (Llama 2, Mistral, Gemma 2 folds it) or the chat tokens strip whitespace (Phi-3). Qwen3 renders
# the last answer with a reasoning block, Phi-3 ends a rendering with <|endoftext|>: their parts
# are no prefixes of longer ones.
JOINS = {"builtin", "llama3", "qwen2", "qwen3"}
NO_STEP_PREFIXES = {"qwen3", "phi3"}


@pytest.mark.parametrize("name", ["builtin", *FAMILY_KEYS])
def test_derived_part_tokens_equal_real_encodings(name: str) -> None:
    seen = check_parts(tokenizer_of(name))
    assert seen["prefix"] > 0, seen  # at least the whole conversation itself
    assert (seen["joined"] > 0) == (name in JOINS), seen
    assert (seen["step prefix"] > 0) == (name not in NO_STEP_PREFIXES), seen
    assert (seen["none"] > 0) == (name not in JOINS - {"qwen3"}), seen  # parts taken from a step's reference, or encoded


def test_a_cut_inside_a_piece_or_off_the_text_is_not_derived() -> None:
    tokenizer = build_tokenizer()
    text = "<|user|>\nHello there<|end|>\n<|assistant|>\nGeneral Kenobi<|end_of_text|>"
    reference = Reference(text, *arrays(encode_one(tokenizer, text)), edge_tokens(tokenizer))
    assert reference.prefix(text) == len(encode(tokenizer, text)[0])
    cut = text.index("<|assistant|>")
    assert reference.prefix(text[:cut]) == len(encode(tokenizer, text[:cut])[0])  # before an added token
    assert reference.prefix(text[:cut - 1]) == len(encode(tokenizer, text[:cut - 1])[0])  # after <|end|>
    assert reference.prefix(text[:cut - 3]) is None  # inside "Hello there"'s piece: encoded instead
    assert reference.prefix("<|user|>\nHello world<|end|>") is None  # not a prefix
    assert reference.tokens("<|user|>\nGoodbye<|end|>") is None


def test_a_token_inside_another_is_never_joined_at() -> None:
    """An added token that another contains could be matched across a join: it is not joined at."""
    from tokenizers import AddedToken

    tokenizer = build_tokenizer()
    tokenizer.add_tokens([AddedToken("<|end|>\n<|user|>", special=True, normalized=False)], special_tokens=True)
    edges = edge_tokens(tokenizer)
    assert tokenizer.convert_tokens_to_ids("<|end|>") not in edges.joins.tolist()
    assert tokenizer.convert_tokens_to_ids("<|user|>") not in edges.joins.tolist()
    assert tokenizer.convert_tokens_to_ids("<|assistant|>") in edges.joins.tolist()


def test_split_special_tokens_and_slow_tokenizers_derive_nothing() -> None:
    tokenizer = build_tokenizer()
    tokenizer.split_special_tokens = True
    assert edge_tokens(tokenizer) is None


def test_the_fallback_is_used_and_the_split_still_equals_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Qwen3 drops earlier reasoning, so its parts are not pieces of the whole rendering: the split
    encodes a reference part, then the candidates themselves, and its examples are the reference's."""
    from test_streaming import assert_same_rows

    tokenizer = tokenizer_of("qwen3")
    calls = {"fast": 0, "offsets": 0}
    original = encoding_module._encode_batch

    def counted(backend, texts, split_special_tokens, offsets):
        calls["offsets" if offsets else "fast"] += len(texts)
        return original(backend, texts, split_special_tokens, offsets)

    monkeypatch.setattr(encoding_module, "_encode_batch", counted)
    reasoning = [f"<think>\nstep {i} " + "x" * 30 + "\n</think>\n\nAnswer " + str(i) for i in range(8)]
    roles = ["user", "assistant"] * 8
    contents = [c for i in range(8) for c in (f"Question {i}?", reasoning[i])]
    assert assert_same_rows(tokenizer, [("chat", roles, contents)], 96) == 1
    assert calls["fast"] > 0  # candidates encoded as before, where nothing could be derived


def test_derived_counts_leave_the_output_unchanged_on_long_conversations() -> None:
    """Many exchanges, several examples each, at max_seq_len values around the parts' lengths."""
    from test_streaming import assert_same_rows

    tokenizer = build_tokenizer()
    rows = [("chat", [m["role"] for m in c], [m["content"] for m in c]) for c in conversations(seed=3, n=10)]
    for max_seq_len in (150, 300, 301, 700):
        assert assert_same_rows(tokenizer, rows, max_seq_len) > 0
