"""Packing without cross-example attention, and the pad share it saves (assets/training/packing.py)."""

import gc
import random

import numpy as np
import pytest
import torch
from numerics import bf16_tolerance

from assets.models.batches import IGNORE_INDEX, collate_rows, supervised_tokens
from assets.settings.training import QLoraConfig
from assets.training.packing import StepStream, choose_layout, pack_blocks, pad_share_of, plan_layout, row_widths
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


def reference_ffd(lengths, block_len, widths=()):
    """The textbook first-fit decreasing loop (packing.py's before it went a length at a time): the
    oracle. With widths, a new row is as wide as the narrowest width holding its first example."""
    rows, room = [], []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        fit = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if fit is None:
            rows.append([i])
            room.append(min((w for w in widths if w >= lengths[i]), default=block_len) - lengths[i])
        else:
            rows[fit].append(i)
            room[fit] -= lengths[i]
    return rows


def skewed(n, seed=0):
    rng = random.Random(seed)  # benchmarks/train_throughput.py's skewed_lengths: median ~70 of 512, long tail
    return [max(8, min(512, int(16 + rng.lognormvariate(4.0, 0.9)))) for _ in range(n)]


def assert_valid(rows, lengths, block_len):
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))  # every example exactly once
    assert all(sum(lengths[i] for i in row) <= block_len for row in rows)


@pytest.mark.parametrize("mix", ["skewed", "narrow", "small_block", "halves"])
def test_pack_blocks_gives_the_reference_first_fit_decreasing_rows(mix):
    rng = random.Random(3)
    lengths, block = {
        "skewed": (skewed(3000), 512),
        "narrow": ([rng.randint(550, 890) for _ in range(500)], 890),  # one example per row
        "small_block": ([rng.randint(0, 16) for _ in range(2000)], 16),  # zero lengths too
        "halves": ([rng.choice([1, 170, 171, 256, 257, 341, 512]) for _ in range(2000)], 512),  # many ties, exact fits
    }[mix]
    rows = pack_blocks(lengths, block)
    reference = reference_ffd(lengths, block)
    assert_valid(rows, lengths, block)
    assert rows == reference  # the same rows, so the same pad share; and checked on its own:
    assert pad_share_of([rows], lengths, block) <= pad_share_of([reference], lengths, block)


@pytest.mark.parametrize("mix", ["skewed", "halves"])
def test_rows_of_several_widths_are_the_reference_ones_and_pad_as_little(mix):
    rng = random.Random(4)
    lengths = skewed(3000) if mix == "skewed" else [rng.choice([1, 60, 64, 65, 128, 129, 300, 512]) for _ in range(2000)]
    widths = row_widths(512)
    assert widths == (512, 256, 128) and row_widths(2048) == (2048, 1024, 512) and row_widths(100) == (100,)
    rows = pack_blocks(lengths, 512, widths)
    assert rows == reference_ffd(lengths, 512, widths)
    assert_valid(rows, lengths, 512)
    layout = plan_layout("blocks", lengths, batch_size=8)
    assert layout.widths == widths and layout.rows(lengths) == rows
    epoch = layout.epoch(lengths, 1, 0)
    for batch in epoch:  # one width per micro-batch, every row within it, about the same tokens each
        width = layout.width_of(batch, lengths)
        assert all(sum(lengths[i] for i in row) <= width for row in batch) and len(batch) <= layout.rows_for(width)
    assert_valid([row for batch in epoch for row in batch], lengths, 512)
    narrow = pad_share_of(epoch, lengths, 512, widths)
    assert narrow == layout.first_epoch_pad_share(lengths, 1)
    # The narrow rows cost little padding next to one width of 512, and most tokens sit in narrower rows.
    assert narrow <= pad_share_of([pack_blocks(lengths, 512)], lengths, 512) + 0.02
    if mix == "skewed":
        assert sum(layout.width_of(b, lengths) < 512 for b in epoch) > len(epoch) / 2


def test_pack_blocks_is_deterministic_and_takes_lists_or_arrays():
    lengths = skewed(2000, seed=5)
    rows = pack_blocks(lengths, 512)
    assert pack_blocks(lengths, 512) == rows
    assert pack_blocks(np.asarray(lengths, dtype=np.int32), 512) == rows
    assert all(type(i) is int for row in rows for i in row)  # Python ints, as training indexes datasets with them
    assert pack_blocks([], 512) == []
    with pytest.raises(ValueError, match="0..block_len"):
        pack_blocks([3, 513], 512)


@pytest.mark.parametrize("mode", ["blocks", "by_length", "off"])
def test_choose_layouts_pad_share_is_that_of_the_first_epoch(mode):
    lengths = skewed(1500, seed=2)
    layout = plan_layout(mode, lengths, batch_size=3)
    for seed in (0, 7):
        assert layout.first_epoch_pad_share(lengths, seed) == pad_share_of(layout.epoch(lengths, seed, 0), lengths, layout.block_len, layout.widths)


def test_a_layout_packs_each_dataset_for_itself():
    """The packing is cached per layout; a second dataset must get its own rows, not the first one's."""
    first, second = skewed(400, seed=1), skewed(400, seed=2)
    layout = plan_layout("blocks", first + second, batch_size=4)
    assert layout.rows(first) == reference_ffd(first, layout.block_len, layout.widths)
    assert layout.rows(second) == reference_ffd(second, layout.block_len, layout.widths)
    rows = [row for batch in layout.epoch(first, 1, 0) for row in batch]
    assert_valid(rows, first, layout.block_len)
    rows[0].append(10**6)  # what a caller does with its epoch does not reach the cache
    assert layout.rows(first) == reference_ffd(first, layout.block_len, layout.widths)


def test_packed_collate_resets_positions_and_masks_boundary_labels():
    batch = collate_rows([[example([1, 2, 3]), example([4, 5])]], PAD, block_len=7)
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1]]
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, PAD, PAD]]
    # the second example's first label is dropped: token 3 must not learn to predict token 4
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3, IGNORE_INDEX, 5, IGNORE_INDEX, IGNORE_INDEX]]
    assert "attention_mask" not in batch
    assert supervised_tokens(batch) == 3


@pytest.mark.parametrize("attention", ["sdpa", "eager"])  # eager: what training picks on a CPU (compute.py)
def test_an_example_inside_a_packed_row_sees_only_itself(model, compute_dtype, attention):
    model.base_model.model.set_attn_implementation(attention)
    try:
        _sees_only_itself(model, compute_dtype)
    finally:
        model.base_model.model.set_attn_implementation("sdpa")


def _sees_only_itself(model, compute_dtype):
    a, b, c = [256, *range(97, 117)], [256, *range(100, 111)], [256, *range(105, 130)]
    # b alone in its row, padded beside a longer row: the masked path, as in the packed row. (Unpadded
    # and unmasked, the 4-bit model under eager attention lands ~1e-3 off in fp32 whatever b's
    # neighbours, where the full-precision model's eager and SDPA agree to 4e-7: like with like.)
    alone = logits(model, collate_rows([[example(b)], [example(c)]], PAD))[0, : len(b)]
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
    share = {name: pad_share_of(layout.epoch(lengths, 1, 0), lengths, layout.block_len, layout.widths)
             for name, layout in (("blocks", blocks), ("off", padded), ("by_length", sorted_))}
    assert share["blocks"] < 0.02
    assert 0.4 < share["off"] < 0.7
    assert share["by_length"] < share["off"] / 3


def test_epoch_layout_is_a_pure_function_of_seed_and_epoch():
    lengths = [random.Random(i).randint(1, 50) for i in range(100)]
    layout = plan_layout("blocks", lengths, batch_size=4)
    assert layout.epoch(lengths, 3, 1) == layout.epoch(lengths, 3, 1)
    assert layout.epoch(lengths, 3, 1) != layout.epoch(lengths, 3, 2)
    # a fresh layout (another process, a resumed run) with the lengths as an array: the same epoch
    assert plan_layout("blocks", np.asarray(lengths), batch_size=4).epoch(np.asarray(lengths), 3, 1) == layout.epoch(lengths, 3, 1)
    by_length = plan_layout("by_length", lengths, batch_size=4)
    assert by_length.epoch(lengths, 3, 1) == plan_layout("by_length", lengths, batch_size=4).epoch(np.asarray(lengths), 3, 1)
    assert by_length.epoch(lengths, 3, 1) != by_length.epoch(lengths, 3, 2)
    assert gc.isenabled()  # epochs pause the cycle collector while they build their lists, and restore it


def test_step_stream_walks_every_packed_row_once_per_epoch():
    lengths = skewed(600, seed=4)
    layout = plan_layout("blocks", lengths, batch_size=4)
    stream = StepStream(layout, lengths, seed=1, per_step=2)
    per_epoch = len(stream.first_epoch)
    batches = [batch for step in range(per_epoch) for batch in stream.step(step)]  # two epochs, 2 per step
    first, second = batches[:per_epoch], batches[per_epoch:]
    assert first == stream.first_epoch and second == layout.epoch(lengths, 1, 1)
    for epoch in (first, second):
        assert_valid([row for batch in epoch for row in batch], lengths, layout.block_len)


def test_auto_packs_a_skewed_mix_and_batches_a_narrow_long_mix_by_length():
    rng = random.Random(0)
    skewed = [min(512, 16 + int(rng.lognormvariate(4.0, 0.9))) for _ in range(500)]
    narrow = [rng.randint(550, 890) for _ in range(100)]  # like the sample domain: one example fills a block
    assert choose_layout("auto", skewed, 8, seed=1).mode == "blocks"
    assert choose_layout("auto", narrow, 8, seed=1).mode == "by_length"
    assert choose_layout("blocks", narrow, 8, seed=1).mode == "blocks"  # an explicit choice is kept
