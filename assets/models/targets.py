"""Which linear layers get LoRA adapters, and which cannot be stored in 4-bit, read off the model.

Module names differ by family (Llama's q_proj ... down_proj, Phi-3's fused qkv_proj / gate_up_proj,
GPT-NeoX's query_key_value / dense_h_to_4h), so a fixed list of names fails on some and silently
adapts only the few matching layers on others. The default `all-linear` resolves, against the
model itself, to every linear projection except the output head (peft's `all-linear` semantics).

Resolved on a weightless skeleton of the model (the meta device), so mistakes surface before
anything is loaded or trained. Pure: no dagster; torch and transformers are imported lazily.
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.settings.training import ALL_LINEAR

# bitsandbytes' CPU 4-bit kernel for inference (taken on CPUs with AVX512-BF16) packs weights in
# tiles of 32 output rows and keeps one scale per 64 inputs: other shapes fail inside it
# ("N must be divisible by block_n", a reshape error) after training succeeded.
OUT_TILE, IN_BLOCK = 32, 64


@dataclass(frozen=True)
class LinearLayer:
    name: str  # full module name, e.g. model.layers.0.self_attn.q_proj
    in_features: int
    out_features: int

    @property
    def leaf(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def quantizable(self) -> bool:
        return self.in_features % IN_BLOCK == 0 and self.out_features % OUT_TILE == 0


@dataclass(frozen=True)
class TargetPlan:
    targets: list[str]  # leaf names given to peft (it matches them as name suffixes)
    counts: dict[str, int]  # layers adapted per leaf name
    full_precision: list[str]  # full names of linear layers kept out of 4-bit

    @property
    def adapted_layers(self) -> int:
        return sum(self.counts.values())


def model_skeleton(base_dir: Path) -> Any:
    """The model's modules without weights (meta device): cheap for any size."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_dir)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def output_head_name(model: Any) -> str | None:
    head = model.get_output_embeddings()
    return next((name for name, module in model.named_modules() if module is head), None)


def linear_layers(model: Any) -> list[LinearLayer]:
    """Every linear layer (torch Linear, bitsandbytes 4-bit Linear, GPT-2's Conv1D), head included."""
    import torch
    from transformers.pytorch_utils import Conv1D

    layers = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            layers.append(LinearLayer(name, module.in_features, module.out_features))
        elif isinstance(module, Conv1D):  # weight stored (in, out)
            layers.append(LinearLayer(name, module.weight.shape[0], module.nf))
    return layers


def resolve_targets(model: Any, requested: list[str]) -> TargetPlan:
    """Leaf names of the layers to adapt. `all-linear`: every linear layer but the output head;
    explicit names (a leaf like `q_proj` or a suffix like `mlp.down_proj`) must each match a
    linear layer, else the error lists the model's linear layer names."""
    head = output_head_name(model)
    layers = linear_layers(model)
    if requested == [ALL_LINEAR]:
        chosen = [layer for layer in layers if layer.name != head]
        targets = list(dict.fromkeys(layer.leaf for layer in chosen))
    else:
        if ALL_LINEAR in requested:
            raise ValueError(f"target_modules: '{ALL_LINEAR}' stands alone, got {requested}")
        available = ", ".join(f"{leaf} ({n})" for leaf, n in Counter(layer.leaf for layer in layers).items())
        for name in requested:
            if not any(_matches(layer.name, name) for layer in layers):
                raise ValueError(f"target_modules: {name!r} matches no linear layer of this model; its linear layers are: {available}")
        chosen = [layer for layer in layers if any(_matches(layer.name, name) for name in requested)]
        targets = list(requested)
    return TargetPlan(
        targets=targets,
        counts=dict(Counter(layer.leaf for layer in chosen)),
        full_precision=unquantizable(model),
    )


def unquantizable(model: Any) -> list[str]:
    """Linear layers (not the head, never quantized anyway) whose shape the 4-bit kernels cannot run."""
    head = output_head_name(model)
    return [layer.name for layer in linear_layers(model) if layer.name != head and not layer.quantizable]


def _matches(full_name: str, name: str) -> bool:
    return full_name == name or full_name.endswith("." + name)
