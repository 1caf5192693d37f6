"""How the training step computes: precision, attention kernel and dropout, chosen per device.

Measured on the benchmark model (benchmarks/train_throughput.py, 2-core AVX512-BF16 CPU; the lever
table is in the README, Training):

- Precision. With compute_dtype bfloat16, peft's `prepare_model_for_kbit_training` upcasts every
  frozen weight that is not 4-bit (embeddings, norms, the head) to float32, and bitsandbytes casts
  each 4-bit layer's output back to its input's dtype. So the residual stream, attention, the LoRA
  matmuls and every input-gradient matmul of the backward ran in float32, at half the bf16 rate.
  Here the frozen weights go back to the compute dtype and the forward runs under autocast: the
  trainable LoRA weights stay float32 (the optimiser's master copy), their matmuls run in bf16, and
  the loss is computed in float32 (transformers upcasts the logits). Float32 compute is untouched.
- Attention. A packed row holds several examples; eager attention, and SDPA with the block-diagonal
  mask transformers builds for it, compute the whole (width x width) square of every row and mask
  most of it away. On a CPU, attention.py computes each example's own causal square instead (the
  examples gathered into a few length buckets, one causal attention call per bucket): exact for every
  real token. CUDA, and models whose attention does more than that (soft-capping, sinks, short
  sliding windows), keep what transformers chose at load (unmeasured on a GPU).
- Dropout. On a CPU, `nn.Dropout` draws one random number per element: 18% of the step at the
  default p = 0.05; SparseDropout (dropout.py) draws only the dropped positions. CUDA's fused
  dropout is cheap, so it is kept there.

Pure: no dagster; torch imported inside.
"""

import contextlib
from typing import Any

from assets.training.packing import ROW_WIDTH_CLASSES


def keep_frozen_weights_in(model: Any, dtype: Any) -> int:
    """Frozen floating-point weights (not the 4-bit ones, not the trainable adapters) cast to `dtype`
    when it is a 16-bit compute dtype; returns how many. Buffers (rotary frequencies) are left alone."""
    import torch

    if dtype not in (torch.bfloat16, torch.float16):
        return 0
    cast = 0
    for parameter in model.parameters():
        if not parameter.requires_grad and parameter.is_floating_point() and parameter.dtype != dtype:
            parameter.data = parameter.data.to(dtype)
            cast += 1
    return cast


def autocast(device: str, dtype: Any) -> Any:
    """The context the forward runs under: autocast to a 16-bit compute dtype, nothing for float32."""
    import torch

    if dtype not in (torch.bfloat16, torch.float16):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def attention_for(device: str, model_config: Any = None, longest: int = 0) -> str | None:
    """transformers' attention implementation for training on `device` a model of `model_config` with
    examples up to `longest` tokens: per-example attention on a CPU where it computes what the
    model's own attention does (attention.supports); else None, the one transformers chose when it
    loaded the model (SDPA where the architecture supports it, eager otherwise, e.g. Gemma 2)."""
    from assets.training.attention import register, supports

    if device != "cpu" or (model_config is not None and not supports(model_config, longest)):
        return None
    return register()


def row_width_classes(attention: str | None) -> int:
    """How many packed row widths to use with `attention` (packing.row_widths). Where attention costs a whole
    row's width squared (SDPA with the packed-row mask, CUDA), narrower rows cut it: 1.17x on the CPU
    benchmark before per-example attention. With per-example attention (CPU) each example costs its
    own square in any row; three widths then trained no faster (3,256 vs 3,358 tok/s, means of three
    alternating runs) and padded more (1.2% vs 0.4%), so one width."""
    return 1 if attention is not None else ROW_WIDTH_CLASSES


def prepare_for_training(model: Any, dtype: Any, device: str, longest: int = 0) -> dict[str, Any]:
    """Apply the choices above to a peft model; what was chosen (for the run log and metadata)."""
    from assets.training.dropout import install_sparse_dropout
    from assets.training.fused_lora import install_fused_lora

    cast = keep_frozen_weights_in(model, dtype)
    attention = attention_for(device, model.base_model.model.config, longest)
    if attention is not None:
        model.base_model.model.set_attn_implementation(attention)
    attention = model.base_model.model.config._attn_implementation
    sparse = install_sparse_dropout(model) if device == "cpu" else 0
    fused = install_fused_lora(model) if device == "cpu" else 0
    return {"frozen_weights_in_compute_dtype": cast, "attention": attention, "sparse_dropout_layers": sparse, "fused_lora_layers": fused}
