"""What the foundation tests compare models by."""

from pathlib import Path


def reference_logits(model_dir: Path):
    """Logits (batch 1, 6 tokens, vocab) of the model in `model_dir`, loaded from safetensors only."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([[256, 260, 104, 105, 10, 257]])).logits
