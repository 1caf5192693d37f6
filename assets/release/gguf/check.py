"""Reading a written GGUF back: its header and tensors with gguf's reader, its logits through
transformers' GGUF loader, against the Hugging Face model it was written from.

The tensor comparison catches a wrong name, shape or count; the logit comparison catches what the
header cannot show: a missing Q/K permutation, a transposed weight, a lost tensor, a wrong rope or
norm setting. The tolerance is relative to the largest reference logit, so one setting fits models
whose logits are 1 or 30 in size: f16 weights land near 1e-4..1e-3 of it, q8_0 near 1e-2.

Pure: no dagster; torch and transformers are imported inside the functions.
"""

from dataclasses import dataclass
from pathlib import Path

# Keys every file must carry for llama.cpp (and transformers) to rebuild model and tokenizer.
REQUIRED_KEYS = (
    "general.architecture", "general.file_type", "tokenizer.ggml.model", "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.eos_token_id",
)
# A BOS id only where the tokenizer has one: Qwen2 has none, and llama.cpp then adds none (add_bos_token false).
BOS_KEY, ADD_BOS_KEY = "tokenizer.ggml.bos_token_id", "tokenizer.ggml.add_bos_token"
ARCH_KEYS = ("context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
             "attention.head_count_kv", "attention.layer_norm_rms_epsilon", "rope.freq_base")


@dataclass(frozen=True)
class ReadBack:
    architecture: str
    tensors: dict[str, tuple[int, ...]]  # gguf name -> shape as numpy sees it (rows, columns)
    tensor_types: dict[str, str]  # gguf name -> ggml type name
    keys: tuple[str, ...]
    tokens: int
    chat_template: str | None


def read_back(path: Path) -> ReadBack:
    """The file as gguf's own reader sees it; a required key missing raises, naming the file and the key."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    fields = reader.fields
    architecture = fields["general.architecture"].contents()
    missing = [k for k in (*REQUIRED_KEYS, *(f"{architecture}.{k}" for k in ARCH_KEYS)) if k not in fields]
    if ADD_BOS_KEY in fields and fields[ADD_BOS_KEY].contents() and BOS_KEY not in fields:
        missing.append(f"{BOS_KEY} (the file says add_bos_token)")
    if missing:
        raise ValueError(f"{path}: GGUF metadata lacks {', '.join(missing)}")
    template = fields.get("tokenizer.chat_template")
    return ReadBack(
        architecture=architecture,
        # GGUF lists dimensions innermost first; reversed they are the (out, in) of PyTorch.
        tensors={t.name: tuple(int(d) for d in reversed(t.shape)) for t in reader.tensors},
        tensor_types={t.name: t.tensor_type.name for t in reader.tensors},
        keys=tuple(fields),
        tokens=len(fields["tokenizer.ggml.tokens"].data),
        chat_template=template.contents() if template is not None else None,
    )


@dataclass(frozen=True)
class LogitParity:
    max_abs_diff: float
    reference_max_abs: float
    relative_diff: float  # max_abs_diff / reference_max_abs
    tokens: int


def logit_parity(model_dir: Path, gguf_path: Path, inputs: list[list[int]]) -> LogitParity:
    """Logits of the GGUF loaded by transformers (de-quantised to float32) against the HF model's,
    one unpadded sequence of token ids at a time."""
    import torch
    from transformers import AutoModelForCausalLM

    reference_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32).eval()
    diff, scale = 0.0, 1e-12
    with torch.no_grad():
        for ids in inputs:
            batch = torch.tensor([ids], dtype=torch.long)
            reference = reference_model(input_ids=batch).logits.float()
            # Every vocabulary column is compared, the embedding's padding rows included: they are weights too.
            diff = max(diff, (loaded(input_ids=batch).logits.float() - reference).abs().max().item())
            scale = max(scale, reference.abs().max().item())
    return LogitParity(float(diff), float(scale), float(diff / scale), sum(len(ids) for ids in inputs))
