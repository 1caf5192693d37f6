"""Merging an adapter into a full-precision base, and proving the merge changed nothing.

The adapter is merged into the base loaded *without* quantization (merging into 4-bit weights
would round the update away). The parity check runs the adapter on that same base unmerged, then
the merged model reloaded from disk, on eval tokens, and records the largest logit difference.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.models.batches import pad_batch
from assets.models.chat_format import chat_format
from assets.models.loading import load_full_precision_base, load_tokenizer
from assets.models.scoring import supervised_loss
from assets.settings.merge import MergeConfig


@dataclass(frozen=True)
class MergeReport:
    max_abs_logit_diff: float
    eval_loss_merged: float
    parameters: int


def merge_adapter(base_dir: Path, adapter_dir: Path, out_dir: Path, eval_dataset: Any, config: MergeConfig, device: str) -> MergeReport:
    """Write a standard Hugging Face model directory (safetensors + tokenizer) to `out_dir`."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, config.dtype)
    tokenizer = load_tokenizer(adapter_dir)
    parity_rows = eval_dataset.select(range(min(config.parity_examples, len(eval_dataset))))
    batch = {k: v.to(device) for k, v in pad_batch(list(parity_rows.select_columns(["input_ids", "labels"])), tokenizer.pad_token_id).items()}

    adapted = PeftModel.from_pretrained(load_full_precision_base(base_dir, dtype, device), adapter_dir)
    reference = _logits(adapted, batch)
    merged = adapted.merge_and_unload()
    # Serving stacks stop at generation_config's eos ids: a base model lists only EOS, while the
    # fine-tuned model ends its answers with the template's end-of-turn token.
    merged.generation_config.eos_token_id = chat_format(tokenizer).stop_token_ids(tokenizer.eos_token_id)
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)

    # Reload from disk: the check covers what was written, not just what is in memory.
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=dtype, device_map={"": device})
    mask = batch["attention_mask"].bool()
    difference = (_logits(reloaded, batch) - reference).abs()[mask].max().item()
    loss, _ = supervised_loss(reloaded, eval_dataset, tokenizer.pad_token_id, 8, device)
    return MergeReport(
        max_abs_logit_diff=float(difference),
        eval_loss_merged=loss,
        parameters=sum(p.numel() for p in reloaded.parameters()),
    )


def _logits(model: Any, batch: dict) -> Any:
    import torch

    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
