"""One LoRA layer's forward with the adapter's update folded into a single matmul.

peft's LoRA forward (for a 4-bit base) is `result = base(x).clone(); result = result + B(A(drop(x))) *
scale`: besides the two small matmuls it makes three full passes over the (tokens x out_features)
output (a defensive clone of the base output, the multiply by the scale, the add), and the backward
repeats the multiply. Here the update is `addmm(base(x), A(drop(x)), B^T, alpha=scale)`: the scale and
the add ride inside the matmul, in the forward and in the backward. Same arithmetic up to rounding
(the scale is applied inside the matmul's accumulation instead of after it).

The clone peft makes guards against autograd errors on an in-place change of a view in old PyTorch
versions; nothing here changes a tensor in place.

Only the training case is fused: one active adapter, plain LoRA (no DoRA or other variant), not
merged, adapters enabled, no per-row adapter names. Anything else calls peft's own forward, so
evaluation with adapters disabled, merging and mixed batches behave exactly as before.

Pure: no dagster; torch and peft imported inside.
"""

from typing import Any


def install_fused_lora(model: Any) -> int:
    """Give every LoRA layer of `model` the fused forward; returns how many layers."""
    from peft.tuners.lora import LoraLayer

    installed = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and hasattr(module, "lora_A") and not getattr(module, "_loraline_fused", False):
            module._loraline_peft_forward = module.forward
            module.forward = _fused_forward.__get__(module)
            module._loraline_fused = True
            installed += 1
    return installed


def _fused_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    import torch

    adapters = [name for name in self.active_adapters if name in self.lora_A]
    if (self.disable_adapters or self.merged or len(adapters) != 1 or args or kwargs
            or adapters[0] in getattr(self, "lora_variant", {}) or not isinstance(self.lora_A[adapters[0]], torch.nn.Linear)
            or getattr(self.lora_B[adapters[0]], "bias", None) is not None):
        return self._loraline_peft_forward(x, *args, **kwargs)
    name = adapters[0]
    result = self.base_layer(x)
    low_rank = self.lora_A[name](self.lora_dropout[name](x))  # (..., r)
    weight_b = self.lora_B[name].weight  # (out_features, r)
    if not torch.is_autocast_enabled(x.device.type) and low_rank.dtype != result.dtype:
        # Outside autocast the adapters (float32) and the base output may differ in dtype: as peft does,
        # compute the update in the adapters' dtype and bring it to the base output's.
        update = torch.mm(low_rank.reshape(-1, low_rank.shape[-1]), weight_b.t()) * self.scaling[name]
        return result + update.view(result.shape).to(result.dtype)
    fused = torch.addmm(result.reshape(-1, result.shape[-1]), low_rank.reshape(-1, low_rank.shape[-1]), weight_b.t(), alpha=self.scaling[name])
    return fused.view(result.shape)
