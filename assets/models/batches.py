"""Labels and micro-batches, as every stage sees them: the ignored-label value, supervised-token
counts, and the one collate function (padded rows, or packed rows with position resets).

Pure: no dagster; torch is imported inside the functions that build tensors.
"""

from typing import Any

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy skips


def count_supervised(labels: list[int]) -> int:
    """Positions the loss is computed on. The model predicts token t+1 from tokens <= t, so the
    first label never counts."""
    return sum(label != IGNORE_INDEX for label in labels[1:])


def collate_rows(rows: list[list[dict[str, Any]]], pad_token_id: int, block_len: int = 0) -> dict[str, Any]:
    """Tensors of shape (rows, width) for one micro-batch.

    Packed rows (several examples, or `block_len` > 0) carry `position_ids` restarting at each
    example and no attention mask; each example's first label is IGNORE_INDEX so the previous
    example's last token is never trained to predict it. Single-example rows are right-padded with an
    attention mask, as before.
    """
    import torch

    packed = block_len > 0
    widths = [sum(len(f["input_ids"]) for f in row) for row in rows]
    width = block_len if packed else max(widths)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    out: dict[str, Any] = {"input_ids": ids, "labels": labels}
    if packed:
        # Padding at a row's tail counts 0, 1, 2, ...: a sequence of its own, attending to nothing real.
        positions = torch.arange(width).repeat(len(rows), 1)
        out["position_ids"] = positions
    else:
        out["attention_mask"] = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for feature in row:
            n = len(feature["input_ids"])
            ids[r, at : at + n] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[r, at : at + n] = torch.tensor(feature["labels"], dtype=torch.long)
            if packed:
                labels[r, at] = IGNORE_INDEX
                positions[r, at : at + n] = torch.arange(n)
            at += n
        if packed:
            positions[r, at:] = torch.arange(width - at)
        else:
            out["attention_mask"][r, :at] = 1
    return out


def pad_batch(features: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Each example its own right-padded row with an attention mask: shape (batch, longest)."""
    return collate_rows([[feature] for feature in features], pad_token_id)


def supervised_tokens(batch: dict[str, Any]) -> int:
    """Tokens the loss is computed on: labels shifted by one (the model predicts the next token)."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
