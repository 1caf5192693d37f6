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
- Attention. On a CPU, eager attention (bf16 batched matmuls) beat PyTorch's flash kernel for CPU
  (which computes the whole masked square of a packed row) by 14% on one thread at rows of 128-512
  tokens, and tied with it on two (the benchmark's lever table); eager stores the (heads x width x
  width) scores of each row for the backward, so past EAGER_MAX_WIDTH the memory-lean SDPA kernel is
  kept. CUDA keeps SDPA (its fused kernels win there).
- Dropout. On a CPU, `nn.Dropout` draws one random number per element: 18% of the step at the
  default p = 0.05; SparseDropout (dropout.py) draws only the dropped positions. CUDA's fused
  dropout is cheap, so it is kept there.

Pure: no dagster; torch imported inside.
"""

import contextlib
from typing import Any

EAGER_MAX_WIDTH = 1024  # widest packed row (tokens) for eager attention on a CPU: 8 heads x 1024^2 fp32 scores = 32 MB a row and layer


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


def attention_for(device: str, widest_row: int) -> str:
    """transformers' attention implementation for training rows up to `widest_row` tokens."""
    if device == "cpu" and widest_row <= EAGER_MAX_WIDTH:
        return "eager"
    return "sdpa"


def prepare_for_training(model: Any, dtype: Any, device: str, widest_row: int) -> dict[str, Any]:
    """Apply the choices above to a peft model; what was chosen (for the run log and metadata)."""
    from assets.training.dropout import install_sparse_dropout

    cast = keep_frozen_weights_in(model, dtype)
    attention = attention_for(device, widest_row)
    model.base_model.model.set_attn_implementation(attention)
    sparse = install_sparse_dropout(model) if device == "cpu" else 0
    return {"frozen_weights_in_compute_dtype": cast, "attention": attention, "sparse_dropout_layers": sparse}
