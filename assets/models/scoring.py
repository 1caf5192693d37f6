"""Scoring a model on tokenized examples: mean cross-entropy per supervised token (nats), the number
evaluation, the leaderboard and merge parity all report.

Pure: no dagster; torch is imported inside the function.
"""

from typing import Any

from assets.models.batches import IGNORE_INDEX, pad_batch


def supervised_loss(model: Any, dataset: Any, pad_token_id: int, batch_size: int, device: str) -> tuple[float, int]:
    """Mean next-token cross-entropy over supervised positions, and how many positions were scored."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    rows = dataset.select_columns(["input_ids", "labels"])
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = pad_batch(list(rows.select(range(start, min(start + batch_size, len(rows))))), pad_token_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            # position t predicts token t+1: logits (B, T-1, V) against labels (B, T-1)
            shifted = logits[:, :-1].float().reshape(-1, logits.shape[-1])
            targets = batch["labels"][:, 1:].reshape(-1)
            total += F.cross_entropy(shifted, targets, ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((targets != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError("the eval split has no supervised token to score")
    return total / count, count
