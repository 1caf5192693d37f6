"""Micro-batch padding (assets/models/batches.py) and the pad share of padded batches (assets/training/packing.py)."""

import pytest
import torch

from assets.models.batches import IGNORE_INDEX, pad_batch
from assets.training.packing import pad_share_of

PAD = 258


def features(*rows):
    return [{"input_ids": list(ids), "labels": list(labels)} for ids, labels in rows]


def test_right_padding_values_mask_and_shapes():
    batch = pad_batch(
        features(([1, 2, 3], [IGNORE_INDEX, 2, 3]), ([4], [4]), ([5, 6], [5, IGNORE_INDEX])),
        pad_token_id=PAD,
    )
    assert set(batch) == {"input_ids", "labels", "attention_mask"}
    for tensor in batch.values():
        assert tensor.shape == (3, 3)
        assert tensor.dtype == torch.long
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, PAD, PAD], [5, 6, PAD]]
    assert batch["labels"].tolist() == [
        [IGNORE_INDEX, 2, 3],
        [4, IGNORE_INDEX, IGNORE_INDEX],
        [5, IGNORE_INDEX, IGNORE_INDEX],
    ]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]


def test_padding_is_never_supervised():
    batch = pad_batch(features(([1] * 5, [1] * 5), ([2] * 2, [2] * 2)), pad_token_id=0)
    padded = batch["attention_mask"] == 0
    assert (batch["labels"][padded] == IGNORE_INDEX).all()
    assert (batch["input_ids"][padded] == 0).all()


def test_equal_lengths_need_no_padding():
    batch = pad_batch(features(([1, 2], [1, 2]), ([3, 4], [3, 4])), pad_token_id=PAD)
    assert batch["attention_mask"].all()
    assert (batch["input_ids"] != PAD).all()
    assert pad_share(features(([1, 2], [1, 2]), ([3, 4], [3, 4]))) == 0.0


def test_single_example_batch():
    batch = pad_batch(features(([7, 8, 9], [7, 8, 9])), pad_token_id=PAD)
    assert batch["input_ids"].shape == (1, 3)
    assert batch["input_ids"].tolist() == [[7, 8, 9]]


def test_pad_id_is_used_even_when_it_collides_with_real_tokens():
    # Some models use EOS as pad: the mask, not the id, tells padding apart.
    batch = pad_batch(features(([1, 257], [1, 257]), ([1], [1])), pad_token_id=257)
    assert batch["input_ids"].tolist() == [[1, 257], [1, 257]]
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert batch["labels"].tolist() == [[1, 257], [1, IGNORE_INDEX]]


def test_accepts_datasets_style_rows_with_extra_columns():
    rows = [{"input_ids": [1, 2], "labels": [1, 2], "length": 2, "source_file": "a", "line": 1}]
    assert pad_batch(rows, pad_token_id=0)["input_ids"].tolist() == [[1, 2]]


def test_large_token_ids_fit_long_dtype():
    big = 150_000  # beyond int16, typical of large vocabularies
    batch = pad_batch(features(([big], [big])), pad_token_id=0)
    assert batch["input_ids"].item() == big


@pytest.mark.parametrize(
    ("lengths", "expected"),
    [([4], 0.0), ([4, 4], 0.0), ([4, 2], 0.25), ([4, 1, 1, 2], 1 - 8 / 16), ([10, 0], 0.5)],
)
def test_pad_share(lengths, expected):
    rows = [{"input_ids": [1] * n, "labels": [1] * n} for n in lengths]
    assert pad_share(rows) == pytest.approx(expected)


def test_pad_share_matches_the_padded_batch():
    rows = features(([1] * 7, [1] * 7), ([1] * 3, [1] * 3), ([1] * 5, [1] * 5))
    mask = pad_batch(rows, pad_token_id=0)["attention_mask"]
    assert pad_share(rows) == pytest.approx(1 - mask.float().mean().item())


def pad_share(rows) -> float:
    """The share of a padded micro-batch of these rows that is padding, as the trainer computes it."""
    lengths = [len(row["input_ids"]) for row in rows]
    return pad_share_of([[[i] for i in range(len(rows))]], lengths, block_len=0)
