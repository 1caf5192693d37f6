"""Attention over packed rows that computes only what the examples need.

A packed row holds several examples (position ids restart at each), and each token may attend only
to earlier tokens of its own example. Eager attention and PyTorch's SDPA with a block-diagonal mask
both compute the whole (width x width) square of every row and mask most of it away: for the long
tail of short examples that training data has (median ~70 tokens in rows of 512), well over 90% of
the attention work and of its softmax is thrown away, and it was a quarter of a CPU training step.

Here the examples of a micro-batch are gathered into a few buckets by length (each padded up to
its bucket's length at the end), causal SDPA runs once per bucket, and the outputs are gathered
back into the packed layout. A padded tail lies after every real token of its example, so causal
attention never lets a real token see it: the result is exact for every real token, and pad
positions (never in the loss) get values nobody reads. The work is the sum of the buckets' squares
instead of rows x width squared.

Registered with transformers' AttentionInterface as "loraline_segments"; for an implementation it
does not know, transformers builds no mask at all, so the segments come from `position_ids` (packed
rows) or each row is one example (right-padded rows, collate_rows). Training only: no KV cache.
Plain causal attention only: a model whose attention soft-caps its scores (Gemma 2), has attention
sinks, or a sliding window shorter than the longest example keeps the attention transformers chose
(`supports`: SDPA, or eager for Gemma 2), and the function refuses those arguments should one reach
it anyway.

Pure: no dagster; torch imported inside.
"""

from typing import Any

NAME = "loraline_segments"
# Bucket lengths (tokens): about 1.5x apart, so padding a segment up to its bucket costs at most
# 2.25x its own square and about 1.3x on a long-tailed mix, with few enough buckets (one attention call
# each per layer) that per-call overhead stays small. Longer segments go to multiples of 512.
BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# Up to these lengths a bucket runs eager attention (batched matmuls, fp32 softmax), past them SDPA's
# flash kernel (which skips the masked half but runs slowly on short bf16 rows). Forward + backward on
# one thread (AVX512-BF16 CPU), 8 heads of 64, eager vs flash: bf16 21 vs 85 ms for 60 segments of 64,
# 29 vs 95 for 40 of 96, 39 vs 47 for 6 of 256, 26 vs 46 for 3 of 384, 54 vs 51 for 2 of 512 and 381
# vs 225 for 8 of 512; float32 41 vs 41 for 60 of 64, 52 vs 54 for 40 of 96, 207 vs 106 for 16 of 256.
EAGER_UP_TO = {"16-bit": 384, "float32": 128}


def bucket_of(length: int) -> int:
    """The padded length a segment of `length` tokens is computed at."""
    for bucket in BUCKETS:
        if length <= bucket:
            return bucket
    return -(-length // BUCKETS[-1]) * BUCKETS[-1]


def segment_plan(position_ids: Any, rows: int, width: int) -> tuple[list[tuple[Any, int]], Any] | None:
    """How to gather a micro-batch's examples: per bucket, (gather index [n, L] into the flattened
    rows x width tokens, the bucket's length L), and the inverse index that takes every token from
    the buckets' concatenated outputs back to its place. None when every row is one example (nothing
    to gather: plain causal attention over the rows is already exact)."""
    import torch

    if position_ids is None:
        return None
    positions = position_ids.expand(rows, width).reshape(-1)
    starts = positions == 0
    starts[:: width] = True  # a row always starts a segment, whatever its first position id
    if int(starts.sum()) == rows:
        return None
    start_at = torch.nonzero(starts).squeeze(1)
    lengths = torch.diff(start_at, append=torch.tensor([rows * width]))
    # A segment never crosses a row: row starts are segment starts.
    buckets = [bucket_of(n) for n in lengths.tolist()]
    order: dict[int, list[int]] = {}
    for segment, bucket in enumerate(buckets):
        order.setdefault(bucket, []).append(segment)
    plan, inverse, offset = [], torch.empty(rows * width, dtype=torch.long), 0
    for bucket, segments in sorted(order.items()):
        chosen = torch.tensor(segments)
        first, count = start_at[chosen], lengths[chosen]
        steps = torch.arange(bucket)
        # Past its end a segment repeats its last token: any valid index serves, causality hides it.
        index = first[:, None] + torch.minimum(steps[None, :], (count - 1)[:, None])
        real = steps[None, :] < count[:, None]
        slots = offset + torch.arange(len(segments) * bucket).view(len(segments), bucket)
        inverse[index[real]] = slots[real]
        plan.append((index, bucket))
        offset += len(segments) * bucket
    return plan, inverse


def supports(model_config: Any, longest: int) -> bool:
    """Whether this attention computes what `model_config`'s own does, for examples up to `longest`
    tokens: plain causal attention, no score soft-capping, no attention sinks, and any sliding
    window at least as long as the longest example (then it never cuts anything)."""
    configs = [model_config, getattr(model_config, "text_config", None)]
    for config in (c for c in configs if c is not None):
        if getattr(config, "attn_logit_softcapping", None) or getattr(config, "sinks", None) or not getattr(config, "is_causal", True):
            return False
        window = getattr(config, "sliding_window", None)
        windowed = getattr(config, "use_sliding_window", True) is not False or "sliding_attention" in (getattr(config, "layer_types", None) or ())
        if window and windowed and window < longest:
            return False
    return True


def segment_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
                      dropout: float = 0.0, position_ids: Any = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention-function signature: query (batch, heads, width, head_dim), key and
    value (batch, kv_heads, width, head_dim); returns (batch, width, heads, head_dim) and no weights."""
    import torch

    rows, heads, width, dim = query.shape
    if key.shape[2] != width:
        raise ValueError(f"{NAME} attention is for training on whole sequences: {width} queries against {key.shape[2]} keys "
                         "(a KV cache) is not supported; generate with 'sdpa' or 'eager'")
    window = kwargs.get("sliding_window")
    if kwargs.get("softcap") or kwargs.get("s_aux") is not None or (window and window < width):
        raise ValueError(f"{NAME} attention computes plain causal attention; this layer asks for soft-capping, attention sinks "
                         f"or a sliding window of {window} tokens under rows of {width} (train this model with its own attention implementation)")
    plan = segment_plan(position_ids, rows, width)
    if plan is None:
        return causal_attention(query, key, value, scaling, dropout).transpose(1, 2).contiguous(), None
    buckets, inverse = plan
    # Tokens first, so a gather picks whole tokens: (rows * width, heads, head_dim).
    flat = [t.transpose(1, 2).reshape(rows * width, t.shape[1], dim) for t in (query, key, value)]
    outputs = []
    for index, length in buckets:
        q, k, v = (t.index_select(0, index.reshape(-1)).view(index.shape[0], length, t.shape[1], dim).transpose(1, 2) for t in flat)
        out = causal_attention(q, k, v, scaling, dropout)
        outputs.append(out.transpose(1, 2).reshape(-1, heads, dim))
    gathered = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
    return gathered.index_select(0, inverse).view(rows, width, heads, dim), None


def causal_attention(query: Any, key: Any, value: Any, scaling: float | None, dropout: float) -> Any:
    """Causal attention of (n, heads, length, head_dim) queries over (n, kv_heads, length, head_dim)
    keys and values, eager or flash by length and dtype (EAGER_UP_TO)."""
    import torch
    import torch.nn.functional as F

    n, heads, length, dim = query.shape
    groups = heads // key.shape[1]
    scale = dim ** -0.5 if scaling is None else scaling
    if length > EAGER_UP_TO["16-bit" if query.dtype in (torch.bfloat16, torch.float16) else "float32"]:
        return F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scale, dropout_p=dropout, enable_gqa=groups > 1)
    if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
        key, value = (t[:, :, None].expand(n, t.shape[1], groups, length, dim).reshape(n, heads, length, dim) for t in (key, value))
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    future = torch.ones(length, length, dtype=torch.bool, device=query.device).triu(1)
    scores = scores.masked_fill(future, float("-inf"))
    weights = torch.softmax(scores, dim=-1, dtype=torch.promote_types(query.dtype, torch.float32)).to(query.dtype)
    if dropout:
        weights = F.dropout(weights, p=dropout, training=True)
    return torch.matmul(weights, value)


def register() -> str:
    """Make NAME an attention implementation transformers' models accept; returns NAME."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, segment_attention)
    return NAME
