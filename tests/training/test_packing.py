"""Packing without cross-example attention, and the pad share it saves (assets/training/packing.py)."""

import random

import pytest
import torch
from numerics import bf16_tolerance

from assets.models.batches import IGNORE_INDEX, collate_rows, supervised_tokens
from assets.settings.training import QLoraConfig
from assets.training.packing import choose_layout, pack_blocks, pad_share_of, plan_layout
from assets.training.recipe import build_model

PAD = 258


def example(ids, prompt=1):
    return {"input_ids": list(ids), "labels": [IGNORE_INDEX] * prompt + list(ids[prompt:])}


@pytest.fixture(scope="module", params=["float32", "bfloat16"])
def compute_dtype(request) -> str:
    """Pinned, not 'auto': the tolerances below depend on the dtype the base computes in."""
    return request.param


@pytest.fixture(scope="module")
def model(tiny_base, compute_dtype):
    config = QLoraConfig(lora_dropout=0.0, compute_dtype=compute_dtype)
    model, _, _ = build_model(tiny_base, config, "cpu")  # real 4-bit NF4 base + LoRA
    torch.manual_seed(6)  # of 12 seeds tried, one whose bf16 run shows the most rounding flips
    with torch.no_grad():  # non-zero B so the adapters take part in the forward pass
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model.eval()


def equal_logits_tolerance(compute_dtype, reference) -> float:
    """How far the logits of one example may move between two row layouts of the same computation."""
    if compute_dtype == "float32":
        return 1e-5  # fp32 lands ~3e-7 apart here (logits up to ~0.9, u = 6e-8)
    # bf16: other neighbours in the row make the GEMMs block their sums differently, so a rounding
    # can flip (numerics.py): allow one ulp (2 roundings) of the largest logit, ~7e-3 here. Measured
    # over 12 seeds: 0 to 0.25 u x max|logit|; a leak across examples moves them by >180 u x max|logit|.
    return bf16_tolerance(reference.abs().max().item(), roundings=2)


def logits(model, batch):
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits


def test_pack_blocks_places_every_example_once_within_the_block():
    lengths = [random.Random(i).randint(1, 64) for i in range(300)]
    rows = pack_blocks(lengths, 64)
    assert sorted(i for row in rows for i in row) == list(range(300))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    assert len(rows) <= sum(lengths) / 64 * 1.1  # first-fit decreasing is near-optimal here


def test_packed_collate_resets_positions_and_masks_boundary_labels():
    batch = collate_rows([[example([1, 2, 3]), example([4, 5])]], PAD, block_len=7)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1]]
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, PAD, PAD]]
    # the second example's first label is dropped: token 3 must not learn to predict token 4
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3, IGNORE_INDEX, 5, IGNORE_INDEX, IGNORE_INDEX]]
    assert "attention_mask" not in batch
    assert supervised_tokens(batch) == 3


def test_an_example_inside_a_packed_row_sees_only_itself(model, compute_dtype):
    a, b, c = [256, *range(97, 117)], [256, *range(100, 111)], [256, *range(105, 130)]
    alone = logits(model, collate_rows([[example(b)]], PAD))[0]
    tolerance = equal_logits_tolerance(compute_dtype, alone)
    packed = collate_rows([[example(a), example(b), example(c)]], PAD, block_len=64)
    inside = logits(model, packed)[0, len(a) : len(a) + len(b)]
    assert (inside - alone).abs().max().item() < tolerance

    changed = [256, *range(110, 130)]  # same length, other tokens, right before b
    packed["input_ids"][0, : len(changed)] = torch.tensor(changed)
    assert (logits(model, packed)[0, len(a) : len(a) + len(b)] - inside).abs().max().item() < tolerance

    # Control: the same row without the position resets lets b attend to a, and its logits move
    # (by ~0.7, some 90x the bf16 tolerance): a leak cannot hide inside the tolerance.
    leaky = dict(packed, position_ids=torch.arange(64).unsqueeze(0))
    assert (logits(model, leaky)[0, len(a) : len(a) + len(b)] - inside).abs().max().item() > max(1e-3, 10 * tolerance)


def test_blocks_pad_under_2_percent_where_padding_wastes_half():
    rng = random.Random(0)
    lengths = [min(512, 16 + int(rng.lognormvariate(4.0, 0.9))) for _ in range(2000)]  # long-tailed mix
    blocks = plan_layout("blocks", lengths, batch_size=8)
    padded = plan_layout("off", lengths, batch_size=8)
    sorted_ = plan_layout("by_length", lengths, batch_size=8)
    share = {name: pad_share_of(layout.epoch(lengths, 1, 0), lengths, layout.block_len)
             for name, layout in (("blocks", blocks), ("off", padded), ("by_length", sorted_))}
    assert share["blocks"] < 0.02
    assert 0.4 < share["off"] < 0.7
    assert share["by_length"] < share["off"] / 3


def test_epoch_layout_is_a_pure_function_of_seed_and_epoch():
    lengths = [random.Random(i).randint(1, 50) for i in range(100)]
    layout = plan_layout("blocks", lengths, batch_size=4)
    assert layout.epoch(lengths, 3, 1) == layout.epoch(lengths, 3, 1)
    assert layout.epoch(lengths, 3, 1) != layout.epoch(lengths, 3, 2)


def test_auto_packs_a_skewed_mix_and_batches_a_narrow_long_mix_by_length():
    rng = random.Random(0)
    skewed = [min(512, 16 + int(rng.lognormvariate(4.0, 0.9))) for _ in range(500)]
    narrow = [rng.randint(550, 890) for _ in range(100)]  # like the sample domain: one example fills a block
    assert choose_layout("auto", skewed, 8, seed=1).mode == "blocks"
    assert choose_layout("auto", narrow, 8, seed=1).mode == "by_length"
    assert choose_layout("blocks", narrow, 8, seed=1).mode == "blocks"  # an explicit choice is kept
