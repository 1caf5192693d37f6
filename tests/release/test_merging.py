"""Merge parity (assets/release/merging.py): an adapter merged into the full-precision base gives the
logits of the adapter on that base, in float32 and in bfloat16, and the parity check is tight enough
to catch a merge that lost the update or went through 4-bit weights."""

import datasets
import pytest
import torch
from numerics import bf16_tolerance

from assets.models.batches import pad_batch
from assets.models.loading import load_full_precision_base, load_tokenizer
from assets.models.targets import model_skeleton, resolve_targets
from assets.release.merging import merge_adapter
from assets.settings.merge import MergeConfig
from assets.settings.training import ALL_LINEAR


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from assets.foundation.tiny_llama import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def adapter(base, tmp_path_factory):
    """A LoRA adapter (PEFT format) on every projection, with B drawn at the size training reaches here."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("adapter")
    torch.manual_seed(0)
    targets = resolve_targets(model_skeleton(base), [ALL_LINEAR]).targets
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=8, lora_alpha=16, target_modules=targets))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    model.save_pretrained(out)
    load_tokenizer(base).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def eval_split() -> datasets.Dataset:
    rows = [[256, *range(97 + i, 97 + i + 9 + 5 * i), 257] for i in range(8)]  # 11 to 46 tokens
    return datasets.Dataset.from_dict({"input_ids": rows, "labels": rows})


def logits_of(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()


def nf4_round_trip(model, dtype) -> None:
    """What merging into 4-bit weights does: every merged projection goes through NF4 and back."""
    import bitsandbytes.functional as F

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name != "lm_head":
                packed, state = F.quantize_4bit(module.weight.float(), quant_type="nf4")
                module.weight.copy_(F.dequantize_4bit(packed, state).to(dtype))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_merged_logits_match_the_adapter_on_the_same_base(base, adapter, eval_split, tmp_path, dtype):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    batch = pad_batch(list(eval_split.select_columns(["input_ids", "labels"])), load_tokenizer(adapter).pad_token_id)
    mask = batch["attention_mask"].bool()
    reference = logits_of(PeftModel.from_pretrained(load_full_precision_base(base, torch_dtype, "cpu"), adapter), batch)
    scale = reference.abs()[mask].max().item()
    layers = AutoModelForCausalLM.from_pretrained(base).config.num_hidden_layers
    if dtype == "float32":
        tolerance = MergeConfig().parity_tolerance  # the default, 1e-3; fp32 merges land ~7e-7 apart here
    else:
        # bf16: the merge rounds each W + (alpha/r)·B·A to bf16 once where the unmerged path rounds W·x
        # and the adapter's output separately: a possible flip per merged projection (numerics.py).
        # A token's logits sit behind 4 projections in series per block (q/k/v, o, gate/up, down),
        # each adding its flip to the residual stream: 4 x layers roundings of the largest logit,
        # 8 u x max|logit| ≈ 0.03 for this 2-layer model. Measured: 2.1-2.3 u x max|logit|.
        tolerance = bf16_tolerance(scale, roundings=4 * layers)

    report = merge_adapter(base, adapter, tmp_path / "merged", eval_split, MergeConfig(dtype=dtype, parity_tolerance=tolerance), "cpu")
    assert report.max_abs_logit_diff < tolerance
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch_dtype)
    assert next(merged.parameters()).dtype == torch_dtype  # saved and reloaded in the dtype asked for
    assert (logits_of(merged, batch) - reference).abs()[mask].max().item() < tolerance

    # Controls, each far outside the tolerance (bf16: ~45 and ~140 u x max|logit|, fp32: 0.15 and 0.5):
    # merged weights kept in 4-bit NF4 (the lossy merge the design forbids) ...
    nf4_round_trip(merged, torch_dtype)
    assert (logits_of(merged, batch) - reference).abs()[mask].max().item() > 3 * tolerance
    # ... and a merge that lost the update altogether: the base alone.
    base_only = logits_of(load_full_precision_base(base, torch_dtype, "cpu"), batch)
    assert (base_only - reference).abs()[mask].max().item() > 3 * tolerance
