"""Tiny, faithful stand-ins for the model families users bring, built in a directory on the spot.

`build_family_model("qwen3", tmp_path / "qwen3")` writes a standard Hugging Face model directory:
config.json and generation_config.json, model.safetensors (random float32 weights from a fixed
seed), tokenizer.json and a tokenizer_config.json carrying the family's published chat template.
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` load it with no network
and no trust_remote_code, through the same code paths the real model takes.

What each family copies from its published model is in `family_specs.FAMILIES`; how its tokenizer
is trained is in `family_tokenizers`. Nothing here downloads anything.
"""

import copy
from pathlib import Path
from typing import Any

from family_specs import FAMILIES, FamilySpec, Tok
from family_tokenizers import chat_template, save_tokenizer

__all__ = ["FAMILIES", "FamilySpec", "Tok", "build_family_model", "chat_template", "padded_vocab_size"]

VOCAB_MULTIPLE = 64  # embedding rows are padded up to a multiple of this, as most families publish
SEED = 0


def padded_vocab_size(n_tokens: int) -> int:
    return -(-n_tokens // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def build_family_model(family: str, directory: Path, **config_overrides: Any) -> Path:
    """Write the tiny stand-in for `family` into `directory` (created if missing); return it.

    `config_overrides` replace config fields, e.g. `intermediate_size=200` (a width bitsandbytes'
    CPU 4-bit kernels cannot run) or `num_hidden_layers=1`. Identical arguments give byte-identical
    files.
    """
    import torch
    import transformers
    from transformers import GenerationConfig

    if family not in FAMILIES:
        raise KeyError(f"unknown model family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    spec = FAMILIES[family]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    tokenizer = save_tokenizer(spec, directory)
    ids = _special_ids(spec, tokenizer)
    # Deep copy: config classes mutate nested dicts (rope_parameters) in place.
    kwargs = copy.deepcopy(dict(spec.config_kwargs))
    kwargs.update(
        vocab_size=padded_vocab_size(len(tokenizer)),
        tie_word_embeddings=spec.tie_word_embeddings,
        dtype="float32",
        **ids,
    )
    kwargs.update(copy.deepcopy(config_overrides))
    config = getattr(transformers, spec.config_class)(**kwargs)
    model_class = getattr(transformers, spec.model_class)
    # Weight init draws from torch's global RNG; fork it so the caller's RNG state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = model_class(config)
    # A base model's generation config: it stops on the tokenizer's EOS and nothing else.
    model.generation_config = GenerationConfig(**ids)
    model.eval().save_pretrained(directory, safe_serialization=True)
    return directory


def _special_ids(spec: FamilySpec, tokenizer) -> dict[str, int | None]:
    def token_id(token: str | None) -> int | None:
        return None if token is None else tokenizer.convert_tokens_to_ids(token)

    return {
        "bos_token_id": token_id(spec.bos_token),
        "eos_token_id": token_id(spec.eos_token),
        "pad_token_id": token_id(spec.pad_token),
    }
