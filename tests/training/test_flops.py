"""The MFU numerator (assets/training/flops.py) against what PyTorch counts in a real training step."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from assets.training.flops import DecoderShape, training_flops

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.mark.parametrize("targets", [TARGETS, ["q_proj", "v_proj"], ["down_proj"]])
def test_counts_match_torchs_flop_counter_on_a_real_forward_and_backward(targets):
    from peft import LoraConfig, get_peft_model

    from assets.foundation.tiny_llama import build_model

    base = build_model()
    base.set_attn_implementation("eager")  # plain batched matmuls, which the counter sees
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets))
    length = 37
    ids = torch.randint(0, 250, (1, length))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    counts = {str(op).split(".")[1]: n for op, n in counter.get_flop_counts()["Global"].items()}
    ours = training_flops(DecoderShape.of(base.config), [length], rank=4, targets=targets)
    # Linear layers, head and LoRA: exactly what ran (first layer's q/k/v input gradient skipped by autograd too).
    assert counts.get("mm", 0) + counts.get("addmm", 0) == ours.base_linears + ours.head + ours.lora
    # Eager attention computes the whole square of scores, of which the causal half (with the diagonal)
    # is needed: our count's square bounds what ran (autograd may skip one more product in layer one).
    full = ours.attention * 2 * length // (length + 1)
    assert 0.9 * full <= counts["bmm"] <= full


def test_attention_grows_with_each_examples_square_not_the_rows():
    shape = DecoderShape(hidden=512, intermediate=1376, layers=4, heads=8, kv_heads=4, head_dim=64, vocab=320)
    one = training_flops(shape, [512], 8, TARGETS)
    many = training_flops(shape, [64] * 8, 8, TARGETS)
    assert one.base_linears == many.base_linears and one.lora == many.lora and one.head == many.head
    assert one.attention == pytest.approx(many.attention * 513 / 65, rel=1e-12)
