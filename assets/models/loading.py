"""Loading the frozen base: 4-bit NF4 for training and evaluation, full precision for merging."""

import logging
import os
from pathlib import Path
from typing import Any, Literal

# bitsandbytes tries to fetch an optimised CPU kernel from a hub through the `kernels` package;
# offline that fails harmlessly but loudly, so keep it out of user-facing logs.
for _name in ("kernels", "bitsandbytes.cextension"):
    logging.getLogger(_name).setLevel(logging.ERROR)


def pick_device(requested: Literal["auto", "cpu", "cuda"] = "auto") -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no CUDA device")
    return requested


# Overrides what compute_dtype 'auto' picks, so an AVX2-only machine can run the bf16 path (emulated,
# slower) and a bf16 machine the fp32 path, e.g. to test both. Read at each call, never at import.
AUTO_DTYPE_VARIABLE = "LORALINE_AUTO_DTYPE"
AUTO_DTYPES = ("bfloat16", "float32")


def pick_compute_dtype(requested: str, device: str) -> Any:
    """bfloat16 where the device runs it natively, float32 otherwise (or when asked).

    An explicit 'float32' or 'bfloat16' is always honoured; 'auto' follows LORALINE_AUTO_DTYPE when set.
    """
    import torch

    if requested == "float32":
        return torch.float32
    if requested == "bfloat16":
        return torch.bfloat16
    if forced := forced_auto_dtype():
        return getattr(torch, forced)
    if device.startswith("cuda"):  # "cuda:1" too: each torchrun process gets its own device
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def forced_auto_dtype() -> str | None:
    """The dtype LORALINE_AUTO_DTYPE forces on 'auto', or None when it is unset or empty."""
    value = os.environ.get(AUTO_DTYPE_VARIABLE, "")
    if not value:
        return None
    if value not in AUTO_DTYPES:
        raise ValueError(
            f"{AUTO_DTYPE_VARIABLE}={value!r} is not a dtype 'auto' can be forced to: use one of "
            f"{', '.join(AUTO_DTYPES)}, or unset it to pick by the device"
        )
    return value


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 matmul instructions (AVX512-BF16 or AMX).

    Without them PyTorch emulates bf16: measured on our 2-core AMD EPYC (AVX2 only), bf16 matmuls
    ran 40-100x slower than float32 and QLoRA training 5x slower, so 'auto' must not assume bf16.
    """
    return not cpu_flags().isdisjoint({"avx512_bf16", "amx_bf16"})


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (x86 `flags` line of /proc/cpuinfo); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):  # "flags\t\t: fpu vme ... avx2 ... avx512_bf16 ..." (same on every core)
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def load_quantized_base(base_dir: Path, compute_dtype: Any, device: str, double_quant: bool = True, skeleton: Any = None) -> Any:
    """The base model with every linear layer stored as 4-bit NF4 (bitsandbytes), except the output
    head and the layers whose shapes the 4-bit kernels cannot run (targets.unquantizable), which
    stay in the compute dtype. Safetensors only: pickled weights never load here. `skeleton`: the
    model's weightless skeleton when the caller has one already (targets.model_skeleton)."""
    import re

    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from assets.models.targets import model_skeleton, output_head_name, unquantizable

    skeleton = skeleton if skeleton is not None else model_skeleton(base_dir)
    keep = unquantizable(skeleton)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
        # Naming layers to skip replaces transformers' default list, so the head is named too.
        llm_int8_skip_modules=[re.escape(n) for n in [output_head_name(skeleton), *keep] if n] if keep else None,
    )
    return AutoModelForCausalLM.from_pretrained(
        base_dir, quantization_config=quantization, dtype=compute_dtype, device_map={"": device}, use_safetensors=True
    )


def load_full_precision_base(base_dir: Path, dtype: Any, device: str) -> Any:
    """The base model de-quantised (its original weights), for merging adapters losslessly."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, device_map={"": device}, use_safetensors=True)


# Dedicated padding tokens some families ship without naming them as pad (Llama 3.1+).
PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|pad|>", "<pad>", "[PAD]", "<|padding|>")


def load_tokenizer(model_dir: Path) -> Any:
    """The model's tokenizer, with a pad token chosen among its existing tokens when it has none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = pick_pad_token(tokenizer)
    return tokenizer


def pick_pad_token(tokenizer: Any) -> str:
    """An existing token to pad with, never a new one: adding a token would resize the embeddings
    (a silent change to the base). Padded positions are masked out of attention and loss, so any id
    works; a dedicated padding token is preferred, then unk, then EOS (what most recipes use)."""
    vocabulary = tokenizer.get_vocab()
    for name in PAD_CANDIDATES:
        if name in vocabulary:
            return name
    for name in (tokenizer.unk_token, tokenizer.eos_token):
        if name is not None:
            return name
    raise ValueError("the tokenizer has no pad, unk or end-of-sequence token to pad batches with")
