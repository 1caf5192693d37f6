"""The tiny family stand-ins (family_models.py) load, run and tokenize like the models they imitate.

Every test is parametrized over the families; what differs between families on purpose is spelled
out in the tables below, so a failing family shows which published behaviour it lost.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from family_models import FAMILIES, build_family_model, chat_template

HERE = Path(__file__).resolve().parent
FAMILY_KEYS = sorted(FAMILIES)
CHAT_FAMILIES = [key for key in FAMILY_KEYS if FAMILIES[key].chat_template is not None]

CONVERSATION = [
    {"role": "system", "content": "You answer about boilers."},
    {"role": "user", "content": "Why does it hiss?"},
    {"role": "assistant", "content": "The relief valve opens."},
    {"role": "user", "content": "Is that safe?"},
    {"role": "assistant", "content": "Yes, below 2.5 bar."},
]
NOT_ALTERNATING = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]

# What each published template does with CONVERSATION (system + two user/assistant rounds).
# bos: the template writes BOS itself (so tokenizing its output with add_special_tokens=True may
# double it); system: where the system message lands.
TEMPLATE_BEHAVIOUR = {
    "llama2": dict(bos=True, system="[INST] <<SYS>>\nYou answer about boilers.\n<</SYS>>\n\nWhy does it hiss? [/INST]"),
    "llama3": dict(bos=True, system="<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                                    "December 2023\nToday Date: 26 Jul 2024\n\nYou answer about boilers.<|eot_id|>"),
    # Mistral v0.3 moves the system message into the LAST user turn; a conversation that ends with
    # the assistant has no user turn last, so the system message vanishes.
    "mistral": dict(bos=True, system=None),
    "qwen2": dict(bos=False, system="<|im_start|>system\nYou answer about boilers.<|im_end|>\n"),
    "qwen3": dict(bos=False, system="<|im_start|>system\nYou answer about boilers.<|im_end|>\n"),
    "gemma2": dict(raises="System role not supported"),
    "gemma3": dict(bos=True, system="<start_of_turn>user\nYou answer about boilers.\n\nWhy does it hiss?<end_of_turn>"),
    "phi3": dict(bos=False, system="<|system|>\nYou answer about boilers.<|end|>\n"),
    "phi35": dict(bos=False, system="<|system|>\nYou answer about boilers.<|end|>\n"),
    "phi4": dict(bos=False, system="<|system|>You answer about boilers.<|end|>"),
    "olmo2": dict(bos=True, system="<|system|>\nYou answer about boilers.\n<|user|>"),
}
RAISES_ON_NON_ALTERNATING = {"llama2", "mistral", "gemma2", "gemma3"}

ROUND_TRIP_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "two  spaces, trailing space \nnew line\n\n\ttab and CRLF\r\n",
    "café naïve Zürich 日本語 Москва 🔥🚀 ✓ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u200b",
    "def f(x):\n    return x ** 2  # ok\n\n{\"role\": \"user\"}",
    "digits 31415926535 and 1e-5 and $1,250.00",
]
# Documented exceptions to exact round trips (each asserted below, so the list stays true):
# transformers 5 loads Llama 2 (LlamaTokenizer) and Mistral v0.3 with a Metaspace pre-tokenizer in
# prepend_scheme="first": a text that already starts with a space gets no extra "▁", but the decoder
# still strips one space, so the leading space is lost.
LOSES_LEADING_SPACE = {"llama2", "mistral"}
# Phi-3/3.5's legacy normalizer puts "▁" before every text segment, also after a special token, so a
# space appears after each special token on decode; and their chat tokens are rstrip=True, so the
# "\n" the template writes after <|end|> is swallowed when the rendered chat is tokenized.
LEGACY_SPACES_AFTER_SPECIALS = {"phi3", "phi35"}
# An NFC normalizer composes "e" + U+0301 into "é" before tokenizing.
NFC_NORMALIZES = {"qwen2", "qwen3", "gptneox"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {key: build_family_model(key, root / key) for key in FAMILY_KEYS}


@pytest.fixture(scope="module")
def tokenizers(built):
    from transformers import AutoTokenizer

    return {key: AutoTokenizer.from_pretrained(path, local_files_only=True) for key, path in built.items()}


@pytest.fixture(scope="module")
def models(built):
    from transformers import AutoModelForCausalLM

    return {key: AutoModelForCausalLM.from_pretrained(path, local_files_only=True) for key, path in built.items()}


def render(tokenizer, messages, **kwargs) -> str:
    # A fixed date keeps Llama 3's template (which otherwise calls strftime_now) reproducible.
    return tokenizer.apply_chat_template(messages, tokenize=False, date_string="26 Jul 2024", **kwargs)


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_loads_as_the_family_architecture(family, models):
    spec, model = FAMILIES[family], models[family]
    assert type(model).__name__ == spec.model_class
    assert type(model.config).__name__ == spec.config_class
    assert model.dtype.is_floating_point and str(model.dtype) == "torch.float32"
    assert model.config.vocab_size % 64 == 0
    tied = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert tied is spec.tie_word_embeddings


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_decoder_linear_layers_and_head_have_the_published_names(family, models, built):
    import torch
    from safetensors import safe_open

    spec, model = FAMILIES[family], models[family]
    layer = next(module for name, module in model.named_modules() if name.endswith("layers.0"))
    linears = {name.rsplit(".", 1)[-1] for name, module in layer.named_modules() if isinstance(module, torch.nn.Linear)}
    assert linears == set(spec.linear_names)
    assert model.get_output_embeddings() is getattr(model, spec.lm_head_name)
    with safe_open(str(built[family] / "model.safetensors"), "pt") as weights:
        heads = {key for key in weights.keys() if "." not in key.removesuffix(".weight")}
    assert heads == ({spec.head_weight_key} if spec.head_weight_key else set())


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_forward_pass_runs(family, models, tokenizers):
    import torch

    model, tokenizer = models[family], tokenizers[family]
    batch = tokenizer(["Why does the boiler hiss?", "ok"], return_tensors="pt", padding=True) \
        if tokenizer.pad_token is not None else tokenizer(["Why does the boiler hiss?"], return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape == (*batch["input_ids"].shape, model.config.vocab_size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_chat_template_is_the_committed_published_text(family, tokenizers, built):
    spec, tokenizer = FAMILIES[family], tokenizers[family]
    if spec.chat_template is None:  # a base model ships no template
        assert tokenizer.chat_template is None
        with pytest.raises(ValueError, match="chat_template is not set"):
            render(tokenizer, CONVERSATION[1:2])
        return
    committed = (HERE / "templates" / spec.chat_template).read_bytes().decode("utf-8")
    assert tokenizer.chat_template == committed == chat_template(spec)
    config = json.loads((built[family] / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["chat_template"] == committed


@pytest.mark.parametrize("family", CHAT_FAMILIES)
def test_chat_template_renders_or_raises_as_published(family, tokenizers):
    from jinja2.exceptions import TemplateError

    spec, tokenizer, expected = FAMILIES[family], tokenizers[family], TEMPLATE_BEHAVIOUR[family]
    if "raises" in expected:
        with pytest.raises(TemplateError, match=expected["raises"]):
            render(tokenizer, CONVERSATION)
        text = render(tokenizer, CONVERSATION[1:])  # without the system message it renders
    else:
        text = render(tokenizer, CONVERSATION)
        if expected["system"] is None:
            assert "You answer about boilers." not in text
        else:
            assert expected["system"] in text
        assert bool(tokenizer.bos_token and text.startswith(tokenizer.bos_token)) is expected["bos"]
    for turn in CONVERSATION[1:]:
        assert turn["content"] in text
    for answer in ("The relief valve opens.", "Yes, below 2.5 bar."):  # each answer ends its turn
        assert re.search(re.escape(answer) + r" ?" + re.escape(spec.end_of_turn), text), text


@pytest.mark.parametrize("family", sorted(RAISES_ON_NON_ALTERNATING))
def test_templates_that_demand_alternating_roles_raise(family, tokenizers):
    from jinja2.exceptions import TemplateError

    with pytest.raises(TemplateError, match="alternate user/assistant"):
        render(tokenizers[family], NOT_ALTERNATING)


def test_family_specific_template_behaviour(tokenizers):
    prompt = CONVERSATION[1:2]
    qwen3 = render(tokenizers["qwen3"], prompt, add_generation_prompt=True, enable_thinking=False)
    assert qwen3.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # Qwen 3 writes an (empty) think block into the last assistant turn only.
    full = render(tokenizers["qwen3"], CONVERSATION)
    assert full.count("<think>") == 1 and "<think>\n\n</think>\n\nYes, below 2.5 bar." in full
    phi3 = tokenizers["phi3"]
    assert render(phi3, prompt).endswith("<|end|>\n" + phi3.eos_token)  # no generation prompt: EOS
    assert render(phi3, prompt, add_generation_prompt=True).endswith("<|assistant|>\n")
    mistral = render(tokenizers["mistral"], CONVERSATION[:4])  # ends on a user turn: system lands there
    assert "[INST] You answer about boilers.\n\nIs that safe?[/INST]" in mistral
    llama3 = tokenizers["llama3"].apply_chat_template(prompt, tokenize=False)
    assert re.search(r"Today Date: \d\d \w{3} \d{4}\n", llama3)  # strftime_now runs in transformers 5


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_added_tokens_encode_to_single_ids(family, tokenizers):
    spec, tokenizer = FAMILIES[family], tokenizers[family]
    for token in spec.leading_tokens + spec.trailing_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token.content)
        assert token_id != tokenizer.unk_token_id or token.content == tokenizer.unk_token
        assert tokenizer.encode(token.content, add_special_tokens=False) == [token_id], token.content
    assert set(spec.special_tokens) <= set(tokenizer.all_special_tokens) | {
        t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    assert len(tokenizer.encode(spec.end_of_turn, add_special_tokens=False)) == 1


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_bos_eos_pad_unk_and_the_bos_convention_are_published(family, tokenizers, built):
    spec, tokenizer = FAMILIES[family], tokenizers[family]
    config = json.loads((built[family] / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == spec.tokenizer_class
    assert config.get("pad_token") == spec.pad_token  # absent (or null) where the family publishes none
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == (spec.bos_token, spec.eos_token, spec.unk_token)
    # transformers 5's GPTNeoXTokenizer defaults pad_token to "<|padding|>" when the config names none.
    assert tokenizer.pad_token == ("<|padding|>" if family == "gptneox" else spec.pad_token)
    ids = tokenizer("hello there").input_ids
    assert (ids[0] == tokenizer.bos_token_id) is spec.adds_bos
    assert tokenizer("hello there", add_special_tokens=False).input_ids == (ids[1:] if spec.adds_bos else ids)
    assert ids[-1] != tokenizer.eos_token_id  # nobody appends EOS on plain encoding
    if spec.chat_template is not None and TEMPLATE_BEHAVIOUR[family].get("bos") and spec.adds_bos:
        # A template that writes BOS, tokenized with add_special_tokens=True, starts with two BOS.
        rendered = render(tokenizer, CONVERSATION[1:3])
        assert tokenizer(rendered).input_ids[:2] == [tokenizer.bos_token_id] * 2


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_text_round_trips_through_encode_and_decode(family, tokenizers):
    tokenizer = tokenizers[family]

    def round_trip(text: str) -> str:
        return tokenizer.decode(tokenizer.encode(text, add_special_tokens=False))

    for text in ROUND_TRIP_TEXTS:
        assert round_trip(text) == text
    assert round_trip(" leading space") == ("leading space" if family in LOSES_LEADING_SPACE else " leading space")
    assert round_trip("cafe\u0301") == ("café" if family in NFC_NORMALIZES else "cafe\u0301")
    spec = FAMILIES[family]
    with_special = f"before{spec.eos_token}after {spec.eos_token} spaced"
    expected = with_special.replace(spec.eos_token, spec.eos_token + " ") \
        if family in LEGACY_SPACES_AFTER_SPECIALS else with_special
    assert round_trip(with_special) == expected
    if spec.chat_template is not None:
        rendered = render(tokenizer, CONVERSATION[1:])
        if family in LEGACY_SPACES_AFTER_SPECIALS:
            assert round_trip(rendered) != rendered  # "\n" after <|end|> eaten, spaces added
        else:
            assert round_trip(rendered) == rendered


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_generation_config_stops_on_the_tokenizer_eos_only(family, models, tokenizers):
    model, tokenizer = models[family], tokenizers[family]
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id == model.config.eos_token_id


def test_two_builds_are_byte_identical(built, tmp_path):
    for family, first in built.items():
        second = build_family_model(family, tmp_path / family)
        names = sorted(p.name for p in first.iterdir())
        assert names == sorted(p.name for p in second.iterdir())
        assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                "tokenizer_config.json"} <= set(names)
        for name in names:
            assert (first / name).read_bytes() == (second / name).read_bytes(), f"{family}/{name}"


def test_a_fresh_process_trains_the_same_tokenizers():
    # Tokenizer training runs in Rust with hashed containers: a new process (new hash seeds) must
    # still produce the same vocabulary and merges. (Weights come from a seeded torch RNG.)
    from family_tokenizers import build_backend

    script = (
        "import json; from family_specs import FAMILIES; from family_tokenizers import build_backend\n"
        "print(json.dumps({key: build_backend(spec).to_str() for key, spec in FAMILIES.items()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=True, cwd=HERE, capture_output=True, text=True,
                          env={"PYTHONPATH": str(HERE), "PYTHONHASHSEED": "12345", "PATH": ""})
    fresh = json.loads(done.stdout)
    for family, spec in FAMILIES.items():
        assert fresh[family] == build_backend(spec).to_str(), family


@pytest.mark.parametrize("family", FAMILY_KEYS)
def test_config_overrides_reach_every_family(family, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    path = build_family_model(family, tmp_path / family, intermediate_size=200)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    assert model.config.intermediate_size == 200
    down = next(m for name, m in model.named_modules() if name.endswith(("down_proj", "dense_4h_to_h")))
    assert down.in_features == 200
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[3, 4, 5]])).logits).all()
