"""Tests for the built-in base model "builtin:tiny-llama" (assets/foundation/tiny_llama.py)."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from assets.foundation.tiny_llama import (
    BOS,
    CHAT_TEMPLATE,
    EOS,
    PAD,
    TinyLlamaSpec,
    build_model,
    build_tokenizer,
    save_tiny_llama,
)

ROLE_MARKERS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CONVERSATION = [
    {"role": "system", "content": "You answer about boilers."},
    {"role": "user", "content": "Why does it hiss?\n"},
    {"role": "assistant", "content": "Pressure valve.\nCheck it."},
    {"role": "user", "content": "And the 🔥 icon?"},
    {"role": "assistant", "content": "Burner on: 点火."},
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.integration  # a fresh interpreter
def test_import_does_not_load_heavy_libraries():
    code = (
        "import sys, assets.foundation.tiny_llama\n"
        "heavy = {'torch', 'transformers', 'tokenizers', 'dagster'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hidden_size": 130}, "hidden_size"),
        ({"num_attention_heads": 3}, "num_attention_heads"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"num_attention_heads": 128}, "num_attention_heads"),  # head_dim 1 is odd: no RoPE
        ({"hidden_size": 96, "num_attention_heads": 3, "num_key_value_heads": 1}, "hidden_size"),
        ({"intermediate_size": 100}, "intermediate_size"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ],
)
def test_spec_rejects_bad_shapes(overrides, field):
    with pytest.raises(ValueError, match=field):
        TinyLlamaSpec(**overrides)


@pytest.mark.parametrize(
    "text",
    ["", "plain ascii", "  leading and trailing  ", "tabs\tand\nnewlines\r\n", "emoji 😀👩‍🔬",
     "日本語のテキスト", "mixed: Ünïcödé — ∑ ∞ \x00\x7f"],
)
def test_tokenizer_round_trips_any_text(tokenizer, text):
    ids = tokenizer.encode(text)
    assert len(ids) == len(text.encode("utf-8"))  # one token per byte, no BOS/EOS added
    assert tokenizer.decode(ids) == text


def test_tokenizer_special_tokens(tokenizer):
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (BOS, EOS, PAD)
    assert len(tokenizer) == 256 + 7
    for token in [BOS, EOS, PAD, *ROLE_MARKERS]:
        assert len(tokenizer.encode(token)) == 1, token
    assert tokenizer.encode("a<|end|>b<|end_of_text|>") == [97, tokenizer.convert_tokens_to_ids("<|end|>"),
                                                           98, tokenizer.eos_token_id]
    assert tokenizer("ab", add_special_tokens=True)["input_ids"] == [97, 98]
    assert tokenizer.model_max_length == 2048
    batch = tokenizer(["a", "abc"], padding=True)["input_ids"]
    assert batch[0] == [97, tokenizer.pad_token_id, tokenizer.pad_token_id]  # padding on the right


def test_chat_template_renders_expected_text(tokenizer):
    text = tokenizer.apply_chat_template(CONVERSATION[1:3], tokenize=False)
    assert text == f"{BOS}<|user|>\nWhy does it hiss?\n<|end|>\n<|assistant|>\nPressure valve.\nCheck it.{EOS}"
    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith(f"{BOS}<|system|>\n") and prompt.count(BOS) == 1
    assert prompt.endswith("<|end|>\n<|assistant|>\n")


def test_chat_template_is_prefix_consistent(tokenizer):
    full = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert full.endswith(EOS)
    for i, message in enumerate(CONVERSATION):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(CONVERSATION[:i], tokenize=False, add_generation_prompt=True)
        answered = tokenizer.apply_chat_template(CONVERSATION[: i + 1], tokenize=False)
        assert answered.startswith(prompt)
        assert answered[len(prompt):] == message["content"] + EOS
        assert full.startswith(answered)


def test_chat_template_assistant_mask_covers_content_and_eos(tokenizer):
    out = tokenizer.apply_chat_template(
        CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    runs, current = [], []
    for token_id, flag in zip(ids, mask):
        if flag:
            current.append(token_id)
        elif current:
            runs, current = runs + [current], []
    runs += [current] if current else []
    expected = [m["content"] + EOS for m in CONVERSATION if m["role"] == "assistant"]
    assert [tokenizer.decode(run) for run in runs] == expected


def test_build_model_shape_and_determinism():
    import torch

    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    model = build_model()
    assert torch.equal(torch.rand(3), expected_next)  # caller's RNG untouched

    assert model.config.vocab_size == 320  # 263 ids padded up to a multiple of 64
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == (256, 257, 258)
    assert sum(p.numel() for p in model.parameters()) == 377_472
    assert all(p.dtype == torch.float32 for p in model.parameters())
    again, other = build_model(), build_model(TinyLlamaSpec(seed=1))
    weight = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(model.state_dict()[weight], again.state_dict()[weight])
    assert not torch.equal(model.state_dict()[weight], other.state_dict()[weight])
    assert build_model(vocab_size=300).config.vocab_size == 320


@pytest.mark.integration  # a fresh interpreter
def test_saved_directory_is_byte_identical_across_processes(saved, tmp_path):
    code = "import sys; from pathlib import Path; from assets.foundation.tiny_llama import save_tiny_llama; " \
           "save_tiny_llama(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "again")], check=True, capture_output=True)
    digests = _digests(saved)
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json"} <= set(digests)
    assert _digests(tmp_path / "again") == digests


def test_saved_directory_loads_back(saved):
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    generation = json.loads((saved / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (256, 257, 258)

    tokenizer = AutoTokenizer.from_pretrained(saved)
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (BOS, EOS, PAD)
    assert tokenizer.convert_tokens_to_ids(ROLE_MARKERS) == [259, 260, 261, 262]
    assert tokenizer("ab")["input_ids"] == [97, 98]

    model = AutoModelForCausalLM.from_pretrained(saved).eval()
    batch = tokenizer(["hello", "hi there"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits  # (batch, seq, vocab)
        reference = build_model()(**batch).logits
    assert logits.shape == (2, 8, 320)
    assert torch.equal(logits, reference)


def test_saved_directory_loads_in_4bit_nf4(saved):
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(saved, quantization_config=quantization)
    assert type(model.model.layers[0].mlp.down_proj).__name__ == "Linear4bit"
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[256, 260, 10, 104, 105]])).logits
    assert logits.shape == (1, 5, 320)
    assert torch.isfinite(logits).all()
