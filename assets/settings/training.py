"""Typed settings of `qlora_adapter` (domain.yaml section `training`): quantisation, LoRA and the
optimiser, with their trade-offs."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# target_modules value meaning every linear projection but the output head (peft's name for it).
ALL_LINEAR = "all-linear"
MAX_TARGET_MODULES, MAX_MODULE_NAME = 64, 200  # a Llama block has 7 linear layers; names are dotted paths


class QLoraConfig(BaseModel):
    """LoRA adapters trained on a frozen 4-bit NF4 base."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)  # NaN and inf refused by name

    lora_rank: int = Field(
        8, ge=1, le=1024, strict=True, description="LoRA rank r (1 to 1024): adapter capacity; parameters grow linearly with it."
    )
    lora_alpha: float = Field(
        16.0, gt=0, le=8192, description="LoRA scaling numerator (at most 8192 = 8 x the largest rank); the update is scaled by alpha / r."
    )
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input; regularises small domains.")
    target_modules: list[str] = Field(
        default_factory=lambda: [ALL_LINEAR],
        min_length=1,
        max_length=MAX_TARGET_MODULES,
        description="Linear layers that get adapters. 'all-linear' (default): every linear projection "
        "but the output head, read off the model (q/k/v/o and MLP on Llama, qkv_proj/gate_up_proj on Phi-3, "
        "query_key_value/dense on GPT-NeoX): the QLoRA paper's choice, better than attention-only at the "
        "same rank. Or layer names (`q_proj`, `mlp.down_proj`); one that matches nothing stops before training. "
        f"At most {MAX_TARGET_MODULES} names of {MAX_MODULE_NAME} characters.",
    )
    double_quant: bool = Field(True, description="Quantise the NF4 quantisation constants too: ~0.4 bit/parameter less memory, no quality cost.")
    compute_dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto",
        description="dtype of the de-quantised matmuls. 'auto' picks bfloat16 where the device "
        "has native bf16 (CUDA with bf16, CPUs with AVX512-BF16/AMX), else float32: emulated "
        "bf16 on an AVX2-only CPU is several times slower (figures in the README, Training).",
    )
    epochs: float = Field(
        3.0, gt=0, le=100, description="Passes over the training split, at most 100 (ignored when max_steps > 0)."
    )
    max_steps: int = Field(
        -1, ge=-1, le=1_000_000, strict=True,
        description="Optimiser steps, at most 1,000,000; > 0 overrides epochs (-1 or 0: use epochs). Useful for quick tries.",
    )
    batch_size: int = Field(8, ge=1, le=1024, strict=True, description="Examples per micro-batch (1 to 1024); memory grows with it.")
    gradient_accumulation: int = Field(
        1, ge=1, le=1024, strict=True,
        description="Micro-batches per optimiser step, 1 to 1024 (effective batch = batch_size x this).",
    )
    learning_rate: float = Field(2e-3, gt=0, lt=1, description="Peak AdamW learning rate for the adapter weights.")
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = Field("cosine", description="Learning-rate schedule after warm-up.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming the learning rate up from 0.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay on adapter weights (0 to 1; decoupled, scaled by the learning rate).")
    max_grad_norm: float = Field(1.0, gt=0, le=1000, description="Gradient clipping norm (at most 1000; larger never clips).")
    packing: Literal["auto", "blocks", "by_length", "off"] = Field(
        "auto",
        description="How examples fill micro-batches. 'blocks': packed into rows of three widths (the longest "
        "example's length, half and a quarter of it) with position ids restarting per example (no attention "
        "across examples), little padding, the most real tokens/s; 'by_length': similar lengths batched together, padded; 'off': random "
        "batches padded to their longest (the most padding). 'auto' picks 'blocks' unless 'by_length' "
        "pads clearly less (a narrow mix of long examples, where one fills a block). Measured figures: "
        "README, Training.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward: less memory, slower steps (README, Training). "
        "Turn on for long sequences on a GPU."
    )
    max_train_minutes: float = Field(
        720.0,
        gt=0,
        le=10_080,
        description="Wall-clock limit of one training run in minutes (default 720 = 12 h; more than 0, at most "
        "10080 = one week): a run past it is stopped, so one domain cannot hold the single accelerator slot "
        "forever. Raise it for large domains on slow hardware.",
    )
    seed: int = Field(
        42, ge=0, le=2**32 - 1, strict=True,
        description="Seed of adapter init, dropout and data order (0 to 2**32-1): same seed and data give the same adapter.",
    )
    logging_steps: int = Field(5, ge=1, le=100_000, strict=True, description="Steps between progress lines in the run log (1 to 100,000).")
    save_steps: int = Field(
        100,
        ge=1,
        le=1_000_000,
        strict=True,
        description="Optimiser steps between checkpoints; a retry or re-run resumes from the last one. "
        "Smaller loses less work to a crash but writes adapter + optimiser state more often (1 to 1,000,000).",
    )

    @model_validator(mode="after")
    def _modules_named(self) -> "QLoraConfig":
        if any(not name.strip() for name in self.target_modules):
            raise ValueError("target_modules contains an empty name")
        if any(len(name) > MAX_MODULE_NAME for name in self.target_modules):
            raise ValueError(f"target_modules: a layer name is longer than {MAX_MODULE_NAME} characters")
        if ALL_LINEAR in self.target_modules and len(self.target_modules) > 1:
            raise ValueError(f"target_modules: '{ALL_LINEAR}' stands alone, got {self.target_modules}")
        return self
