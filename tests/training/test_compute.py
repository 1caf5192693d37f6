"""How the training step computes (assets/training/compute.py, assets/training/dropout.py): sparse
dropout has nn.Dropout's distribution and gradient, bf16 keeps the frozen weights and the forward in
bf16 while the adapters train in float32. Attention and the fused LoRA forward: test_attention.py,
test_fused_lora.py."""

import math

import pytest
import torch
from toy_data import toy_examples

from assets.models.batches import collate_rows
from assets.settings.training import QLoraConfig
from assets.training.compute import attention_for, autocast, keep_frozen_weights_in, prepare_for_training
from assets.training.dropout import SparseDropout, dropped_positions, install_sparse_dropout
from assets.training.recipe import build_model, micro_batch_loss


@pytest.mark.parametrize("n,p", [(1_000_000, 0.05), (200_000, 0.5), (50_000, 0.001), (10, 0.3)])
def test_dropped_positions_are_a_bernoulli_draw(n, p):
    torch.manual_seed(0)
    positions = dropped_positions(n, p)
    assert positions.dtype == torch.int64
    assert bool((positions[1:] > positions[:-1]).all()) and (positions.numel() == 0 or 0 <= int(positions[0]) and int(positions[-1]) < n)
    # The count is Binomial(n, p): within 5 standard deviations (a wrong rate at n = 1e6 misses by hundreds).
    assert abs(positions.numel() - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1
    if n >= 200_000:  # uniform over the range: each half holds about half the drops
        half = int((positions < n // 2).sum())
        assert abs(half - positions.numel() / 2) <= 5 * math.sqrt(positions.numel() / 4) + 1


def test_dropped_positions_follow_torchs_seed():
    torch.manual_seed(3)
    first = dropped_positions(100_000, 0.05)
    torch.manual_seed(3)
    assert torch.equal(first, dropped_positions(100_000, 0.05))
    assert not torch.equal(first, dropped_positions(100_000, 0.05))


def test_sparse_dropout_scales_kept_values_zeroes_the_rest_and_its_gradient():
    torch.manual_seed(1)
    x = torch.randn(64, 300, requires_grad=True)
    layer = SparseDropout(0.2).train()
    y = layer(x)
    dropped = y == 0
    assert 0.1 < dropped.float().mean().item() < 0.3
    torch.testing.assert_close(y[~dropped], x.detach()[~dropped] / 0.8)
    y.sum().backward()
    expected = torch.where(dropped, 0.0, 1 / 0.8)
    torch.testing.assert_close(x.grad, expected)
    assert layer.eval()(x) is x  # identity in eval mode, as nn.Dropout


def test_sparse_dropout_matches_nn_dropouts_statistics_over_many_draws():
    torch.manual_seed(2)
    x = torch.ones(200_000)
    ours, theirs = SparseDropout(0.05).train()(x), torch.nn.Dropout(0.05).train()(x)
    assert abs(ours.mean().item() - 1.0) < 0.01 and abs(theirs.mean().item() - 1.0) < 0.01  # both unbiased
    assert abs((ours == 0).float().mean().item() - (theirs == 0).float().mean().item()) < 0.003


def test_sparse_dropout_refuses_a_probability_of_one():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        SparseDropout(1.0)


@pytest.fixture(scope="module")
def bf16_model(tiny_base):
    model, _, dtype = build_model(tiny_base, QLoraConfig(lora_dropout=0.05, compute_dtype="bfloat16"), "cpu")
    return model, dtype


def test_prepare_for_training_keeps_frozen_weights_bf16_and_adapters_float32(bf16_model):
    model, dtype = bf16_model
    chosen = prepare_for_training(model, dtype, "cpu")
    assert chosen["attention"] == "loraline_segments" and chosen["fused_lora_layers"] > 0 and chosen["frozen_weights_in_compute_dtype"] > 0
    adapters = [p for p in model.parameters() if p.requires_grad]
    assert adapters and all(p.dtype == torch.float32 for p in adapters)
    frozen = [p for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)
    # peft's own dropouts, one per adapted layer, all replaced; the base model has none to touch.
    assert chosen["sparse_dropout_layers"] == sum(isinstance(m, SparseDropout) for m in model.modules()) > 0
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert install_sparse_dropout(model) == 0  # nothing left to replace
    buffers = [b for name, b in model.named_buffers() if "inv_freq" in name]
    assert buffers and all(b.dtype == torch.float32 for b in buffers)  # rotary frequencies stay exact


def test_a_bf16_step_trains_the_float32_adapters(bf16_model):
    model, dtype = bf16_model
    prepare_for_training(model, dtype, "cpu")
    rows = toy_examples(8)
    batch = collate_rows([[{"input_ids": i, "labels": x}] for i, x in zip(rows["input_ids"], rows["labels"])], 258)
    model.train()
    torch.manual_seed(0)
    loss = micro_batch_loss(model, batch, 100, "cpu", dtype)
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
    assert any(g.abs().sum().item() > 0 for g in grads)
    model.zero_grad(set_to_none=True)


def test_float32_compute_is_left_alone():
    layer = torch.nn.Linear(4, 4).requires_grad_(False)
    assert keep_frozen_weights_in(layer, torch.float32) == 0 and layer.weight.dtype == torch.float32
    with autocast("cpu", torch.float32):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("cpu", torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")


def test_segment_attention_only_on_a_cpu():
    assert attention_for("cpu") == "loraline_segments"
    assert attention_for("cuda:0") is None  # what transformers chose at load (SDPA where supported)
