"""GGUF export of the other families the writer supports, as tiny random models with the built-in
byte tokenizer: Qwen2 (q/k/v biases, tied embeddings, no Q/K permutation) and Mistral (written as
llama.cpp's llama architecture, Q/K permuted). Loaded back through transformers' GGUF loader, their
logits match the Hugging Face model's within the f16 tolerance (measured ~3e-4..4e-4 of the largest logit)."""

from pathlib import Path

import pytest
import torch
from gguf import GGUFReader

from assets.foundation.tiny_llama import build_tokenizer
from assets.release.gguf.check import logit_parity
from assets.release.gguf.writer import unsupported_reason, write_gguf

SHAPE = dict(vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512, bos_token_id=256, eos_token_id=257, pad_token_id=258)


def _save(family: str, directory: Path) -> Path:
    from transformers import MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    if family == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**SHAPE, tie_word_embeddings=True))
        with torch.no_grad():  # initialised to zero: drawn, so a lost or misplaced bias shows in the logits
            for name, parameter in model.named_parameters():
                if name.endswith("bias"):
                    parameter.normal_(0, 0.5)
    else:
        model = MistralForCausalLM(MistralConfig(**SHAPE, sliding_window=None, tie_word_embeddings=False))
    model.save_pretrained(directory)
    build_tokenizer().save_pretrained(directory)
    return directory


@pytest.mark.parametrize(("family", "architecture", "tensors"), [("qwen2", "qwen2", 26), ("mistral", "llama", 21)])
def test_family_round_trips_through_transformers(family: str, architecture: str, tensors: int, tmp_path: Path) -> None:
    model_dir = _save(family, tmp_path / family)
    assert unsupported_reason(model_dir) is None
    written = write_gguf(model_dir, tmp_path / "model.gguf", "f16", "x")
    reader = GGUFReader(str(written.path))
    assert reader.fields["general.architecture"].contents() == architecture and written.tensors == tensors
    if family == "qwen2":  # tied: no output.weight; llama.cpp reuses token_embd
        assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= {t.name for t in reader.tensors}
        assert "output.weight" not in {t.name for t in reader.tensors}
    tokenizer = build_tokenizer()
    ids = [tokenizer(tokenizer.apply_chat_template([{"role": "user", "content": "Hello there, friend."}], tokenize=False,
                                                   add_generation_prompt=True))["input_ids"]]
    assert logit_parity(model_dir, written.path, ids).relative_diff < 1e-2


def test_mistral_with_a_sliding_window_is_skipped(tmp_path: Path) -> None:
    import json

    model_dir = _save("mistral", tmp_path / "mistral")
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps(config | {"sliding_window": 4096}))
    assert "sliding window is not supported" in unsupported_reason(model_dir)
