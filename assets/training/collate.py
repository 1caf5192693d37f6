"""Batching: pad each micro-batch to its own longest example (batches are grouped by length)."""

from typing import Any

from assets.tokenization.formatting import IGNORE_INDEX


def pad_batch(features: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Right-pad input_ids with the pad id and labels with IGNORE_INDEX; shape (batch, longest)."""
    import torch

    longest = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), longest), pad_token_id, dtype=torch.long)
    labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(features), longest), dtype=torch.long)
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        ids[row, :n] = torch.tensor(feature["input_ids"], dtype=torch.long)
        labels[row, :n] = torch.tensor(feature["labels"], dtype=torch.long)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def pad_share(features: list[dict[str, Any]]) -> float:
    """Share of a padded batch's positions that are padding."""
    longest = max(len(f["input_ids"]) for f in features)
    real = sum(len(f["input_ids"]) for f in features)
    return 1.0 - real / (longest * len(features))
