"""Segment attention (assets/training/attention.py): for every real token, the same output and
gradients as dense attention under the block-diagonal causal mask of packed rows, on both of its
kernels (eager buckets and flash buckets), with grouped-query heads; and in a real model, the same
loss as transformers' own eager attention with the packed-sequence mask it builds."""

import pytest
import torch

from assets.models.batches import collate_rows
from assets.training.attention import BUCKETS, EAGER_UP_TO, NAME, bucket_of, register, segment_attention, segment_plan, supports


def packed(lengths_per_row: list[list[int]], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """position_ids restarting at each example (tail padding counts on as a sequence of its own, as
    collate_rows does), and each token's segment number."""
    rows = len(lengths_per_row)
    positions, segments = torch.zeros(rows, width, dtype=torch.long), torch.zeros(rows, width, dtype=torch.long)
    for r, lengths in enumerate(lengths_per_row):
        at = 0
        for s, n in enumerate([*lengths, width - sum(lengths)]):
            positions[r, at:at + n], segments[r, at:at + n] = torch.arange(n), s
            at += n
    return positions, segments


def dense_reference(q, k, v, segments, scale):
    width = q.shape[2]
    i = torch.arange(width)
    allowed = (i[None, :, None] >= i[None, None, :]) & (segments[:, :, None] == segments[:, None, :])
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    scores = (q @ k.transpose(-1, -2) * scale).masked_fill(~allowed[:, None], float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2)


@pytest.mark.parametrize("lengths,width", [
    ([[10, 20, 30, 4], [64], [1, 1, 50, 12]], 64),  # short segments: eager buckets, a one-example row, one-token examples
    ([[300, 100], [520], [7, 400]], 600),  # float64 past EAGER_UP_TO["float32"]: flash buckets, one longer than the last bucket
])
def test_segments_match_dense_block_diagonal_attention_and_its_gradients(lengths, width):
    torch.manual_seed(0)
    positions, segments = packed(lengths, width)
    rows, heads, kv_heads, dim = len(lengths), 4, 2, 8
    q = torch.randn(rows, heads, width, dim, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(rows, kv_heads, width, dim, dtype=torch.float64, requires_grad=True) for _ in range(2))
    ours, _ = segment_attention(None, q, k, v, None, scaling=dim ** -0.5, position_ids=positions)
    reference = dense_reference(q, k, v, segments, dim ** -0.5)
    assert ours.shape == (rows, width, heads, dim)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(reference)
    for a, b in zip(torch.autograd.grad(ours, (q, k, v), grad), torch.autograd.grad(reference, (q, k, v), grad)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_rows_of_one_example_take_plain_causal_attention_without_gathering():
    positions = torch.arange(32).repeat(3, 1)
    assert segment_plan(positions, 3, 32) is None and segment_plan(None, 3, 32) is None
    torch.manual_seed(1)
    q, k, v = (torch.randn(3, 2, 32, 4, dtype=torch.float64) for _ in range(3))
    ours, _ = segment_attention(None, q, k, v, None, scaling=0.5, position_ids=positions)
    torch.testing.assert_close(ours, dense_reference(q, k, v, torch.zeros(3, 32, dtype=torch.long), 0.5))


def test_every_token_lands_back_in_its_place_and_buckets_bound_the_padding():
    positions, _ = packed([[5, 17, 100], [3, 3, 3]], 128)
    (buckets, inverse) = segment_plan(positions, 2, 128)
    assert sorted(inverse.tolist()) == sorted(set(inverse.tolist()))  # a distinct slot for each token
    for index, length in buckets:
        assert index.shape[1] == length and length in BUCKETS
    assert [bucket_of(n) for n in (1, 16, 17, 384, 385, 512, 513, 1500)] == [16, 16, 32, 384, 512, 512, 1024, 1536]
    assert EAGER_UP_TO["16-bit"] >= EAGER_UP_TO["float32"]


def test_a_kv_cache_is_refused():
    q, k = torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 5, 4)  # one new token against five cached keys
    with pytest.raises(ValueError, match="KV cache"):
        segment_attention(None, q, k, k, None)


def test_in_a_model_the_loss_equals_transformers_eager_attention_on_packed_rows(tiny_base):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    rows = [[{"input_ids": torch.randint(3, 250, (n,)).tolist(), "labels": torch.randint(3, 250, (n,)).tolist()} for n in lengths]
            for lengths in ([40, 9, 60], [100], [1, 30, 30])]
    batch = collate_rows(rows, pad_token_id=258, block_len=128)
    losses = {}
    for implementation in ("eager", register()):
        model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
        model.set_attn_implementation(implementation)
        # use_cache=False, as training runs: with a cache transformers does not look for packed rows
        losses[implementation] = model(**batch, use_cache=False).loss
    assert NAME in losses
    torch.testing.assert_close(losses[NAME], losses["eager"], rtol=1e-5, atol=1e-5)


def test_only_plain_causal_attention_takes_the_per_example_path():
    from types import SimpleNamespace as Config

    from assets.training.compute import attention_for

    llama = Config(sliding_window=None)
    gemma2 = Config(attn_logit_softcapping=50.0, sliding_window=4096)  # soft-capped scores
    gemma3 = Config(sliding_window=32, layer_types=["sliding_attention", "full_attention"])
    qwen2 = Config(sliding_window=32, use_sliding_window=False)  # a window configured but off
    mistral = Config(sliding_window=4096)
    assert supports(llama, 4096) and supports(qwen2, 512) and supports(mistral, 4096) and supports(gemma3, 32)
    assert not supports(gemma2, 64) and not supports(gemma3, 33) and not supports(mistral, 4097)
    assert not supports(Config(text_config=gemma2), 64)  # a multimodal config's text model counts
    assert attention_for("cpu", gemma2, 64) is None and attention_for("cpu", llama, 64) == NAME  # None: the model's own


@pytest.mark.parametrize("kwargs", [{"softcap": 50.0}, {"sliding_window": 8}, {"s_aux": torch.zeros(2)}])
def test_what_it_does_not_compute_is_refused_not_ignored(kwargs):
    q = torch.zeros(1, 2, 16, 4)
    with pytest.raises(ValueError, match="plain causal attention"):
        segment_attention(None, q, q, q, None, **kwargs)
