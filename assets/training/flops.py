"""The FLOPs a QLoRA training step needs, the numerator of the model FLOP utilisation (MFU) that
benchmarks/train_throughput.py prints (the convention is in the README, Training).

Counted per real token (padding never counts) for a Llama-shaped decoder, multiply-add = 2 FLOPs:

- base linear layers (q, k, v, o, gate, up, down) and the output head: forward 2 x in x out, and
  the input-gradient backward 2 x in x out where a trainable weight lies upstream of the layer's
  input (not the first layer's q/k/v, whose input is the frozen embeddings; nothing in the first
  layer before its first adapted projection). Frozen weights get no weight gradient;
- LoRA on each adapted layer, rank r: forward 2r(in + out), weight gradients 2r(in + out), input
  gradients 2r(out) through B and, where the input needs one, 2r(in) through A;
- attention, causal, per example of l tokens and per layer: scores and weighted values 2 x 2 x
  l(l+1)/2 x heads x head_dim forward, twice that backward (not in the first layer when none of
  q/k/v is adapted). Only what causality needs: a kernel that computes the whole square of a
  packed row does more work than it is credited for.

tests/training/test_flops.py checks the linear and LoRA counts against torch's FlopCounterMode on a
real forward and backward.

Pure: no dagster, no torch.
"""

from collections.abc import Iterable
from dataclasses import dataclass

# Where each projection reads in a decoder layer: q/k/v the layer's input, o the attention, gate/up
# the residual after attention, down the MLP's inner activation. A later stage sees every earlier one.
STAGE = {"q_proj": 0, "k_proj": 0, "v_proj": 0, "o_proj": 1, "gate_proj": 2, "up_proj": 2, "down_proj": 3}


@dataclass(frozen=True)
class DecoderShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, config: object) -> "DecoderShape":
        """From a transformers config (LlamaConfig and the families shaped like it)."""
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        return cls(config.hidden_size, config.intermediate_size, config.num_hidden_layers, heads,
                   getattr(config, "num_key_value_heads", None) or heads, head_dim, config.vocab_size)

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one decoder layer, by name."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {"q_proj": (self.hidden, q), "k_proj": (self.hidden, kv), "v_proj": (self.hidden, kv), "o_proj": (q, self.hidden),
                "gate_proj": (self.hidden, self.intermediate), "up_proj": (self.hidden, self.intermediate),
                "down_proj": (self.intermediate, self.hidden)}


@dataclass(frozen=True)
class StepFlops:
    base_linears: int
    head: int
    lora: int
    attention: int

    @property
    def total(self) -> int:
        return self.base_linears + self.head + self.lora + self.attention


def training_flops(shape: DecoderShape, lengths: Iterable[int], rank: int, targets: Iterable[str]) -> StepFlops:
    """FLOPs to train on examples of these lengths (tokens each), LoRA of `rank` on the named layers."""
    lengths = list(lengths)
    tokens = sum(lengths)
    adapted = set(targets) & set(STAGE)
    base = lora = 0
    for name, (n_in, n_out) in shape.linears().items():
        # Layers whose input needs a gradient: all but the first, and the first only past an adapted stage.
        upstream_in_first = any(STAGE[a] < STAGE[name] for a in adapted)
        with_input_grad = (shape.layers - 1 + upstream_in_first) if adapted else 0
        base += tokens * 2 * n_in * n_out * (shape.layers + with_input_grad)
        if name in adapted:
            per_token = 2 * rank * (n_in + n_out) * 2 + 2 * rank * n_out  # forward, weight grads, grad through B
            lora += tokens * (per_token * shape.layers + 2 * rank * n_in * with_input_grad)
    head = tokens * 4 * shape.hidden * shape.vocab
    forward = sum(2 * 2 * (n * (n + 1) // 2) * shape.heads * shape.head_dim for n in lengths)
    backward_layers = (shape.layers - 1 + any(STAGE[a] == 0 for a in adapted)) if adapted else 0
    attention = forward * shape.layers + 2 * forward * backward_layers
    return StepFlops(base, head, lora, attention)
