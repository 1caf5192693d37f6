"""The built-in default base model "builtin:tiny-llama".

A tiny Llama-architecture causal LM, random-initialised from a fixed seed, with a byte-level
tokenizer and a chat template. It needs no model hub, so every stage of the pipeline (tokenize,
QLoRA train, merge, evaluate) can run offline, on a CPU, in seconds. Its outputs are noise until
trained; it exists to exercise the plumbing, not to be good.

torch / transformers / tokenizers are imported inside the functions: importing this module is cheap.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

BOS, EOS, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"
ROLE_MARKERS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
# Order fixes the ids: bytes are 0..255, then these are 256..262.
SPECIAL_TOKENS = (BOS, EOS, PAD, *ROLE_MARKERS)

# `{% generation %}` marks what the model must learn to produce (assistant content + EOS), so
# `apply_chat_template(..., return_assistant_tokens_mask=True)` can build the loss mask.
# Prefix-consistent: rendering messages[:i] with add_generation_prompt is a prefix of rendering
# messages[:i+1] when message i is the assistant's, because the "\n" after an assistant's EOS is
# written only when something follows it. A conversation ending on an assistant turn ends with EOS.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- '<|' + message['role'] + '|>\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}{{- message['content'] + eos_token -}}{%- endgeneration -%}"
    "{%- if not loop.last or add_generation_prompt -%}{{- '\\n' -}}{%- endif -%}"
    "{%- else -%}"
    "{{- message['content'] + '<|end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)

# Embedding rows are padded up to a multiple of this (see build_model).
VOCAB_MULTIPLE = 64


@dataclass(frozen=True)
class TinyLlamaSpec:
    """Shape of the tiny model. Defaults give ~0.38 M parameters, ~1.5 MB of float32 weights."""

    hidden_size: int = 128  # width of the residual stream, in channels
    intermediate_size: int = 256  # width of the SwiGLU MLP, in channels
    num_hidden_layers: int = 2  # decoder blocks
    num_attention_heads: int = 4  # query heads; head_dim = hidden_size / num_attention_heads
    num_key_value_heads: int = 2  # grouped-query attention: each K/V head serves 2 query heads
    max_position_embeddings: int = 2048  # longest sequence in tokens (= bytes, for this tokenizer)
    seed: int = 0  # torch seed for the random weights

    def __post_init__(self) -> None:
        for name in (
            "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"TinyLlamaSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"TinyLlamaSpec.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if (self.hidden_size // self.num_attention_heads) % 2:
            # RoPE rotates channel pairs, so each head needs an even number of channels.
            raise ValueError(
                f"TinyLlamaSpec.num_attention_heads ({self.num_attention_heads}) must leave an even "
                f"head_dim, got {self.hidden_size // self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"TinyLlamaSpec.num_attention_heads ({self.num_attention_heads}) must be divisible "
                f"by num_key_value_heads ({self.num_key_value_heads})"
            )
        # bitsandbytes quantizes 4-bit weights in blocks of 64 values; multiples of 64 keep every
        # linear layer's weight an exact number of blocks.
        for name in ("hidden_size", "intermediate_size"):
            if getattr(self, name) % 64:
                raise ValueError(
                    f"TinyLlamaSpec.{name} must be a multiple of 64 (bitsandbytes 4-bit block "
                    f"size), got {getattr(self, name)}"
                )


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map, the alphabet `pre_tokenizers.ByteLevel` emits."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    mapping, shift = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:  # control characters and spaces move above U+00FF so they stay visible
            mapping[byte] = chr(256 + shift)
            shift += 1
    return mapping


def build_tokenizer(model_max_length: int = TinyLlamaSpec.max_position_embeddings) -> "PreTrainedTokenizerFast":
    """Byte-level tokenizer: token id == byte value for 0..255, then the special tokens.

    Any UTF-8 text round-trips exactly (every byte is a token; no merges, no normalizer, no
    regex split, no prefix space). Encoding plain text adds nothing: no post-processor, since the
    formatting code places BOS/EOS itself.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: byte for byte, char in _bytes_to_unicode().items()}
    assert set(vocab) == set(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(SPECIAL_TOKENS))

    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_MARKERS),
        model_max_length=model_max_length,
        padding_side="right",
        chat_template=CHAT_TEMPLATE,
    )


def build_model(spec: TinyLlamaSpec = TinyLlamaSpec(), vocab_size: int | None = None) -> "LlamaForCausalLM":
    """Random-initialised float32 LlamaForCausalLM, identical for identical `spec`.

    `vocab_size` is the number of token ids to cover (default: the byte tokenizer's 263). The
    embedding and LM-head rows are padded up to a multiple of 64 (263 -> 320) so matmuls hit
    aligned kernel tiles; the padding rows are never produced by the tokenizer.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(spec.max_position_embeddings)
    n_ids = len(tokenizer) if vocab_size is None else vocab_size
    padded = -(-n_ids // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    ids = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlamaConfig(
        vocab_size=padded,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        dtype="float32",
        **ids,
    )
    # Weight init draws from torch's global RNG; fork it so the caller's RNG state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(**ids)
    return model.eval()


def save_tiny_llama(directory: Path, spec: TinyLlamaSpec = TinyLlamaSpec()) -> Path:
    """Write a standard Hugging Face model directory (config, generation config, safetensors
    weights, tokenizer files) into `directory`, creating it if missing; byte-identical per spec."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    build_model(spec).save_pretrained(directory, safe_serialization=True)
    build_tokenizer(spec.max_position_embeddings).save_pretrained(directory)
    return directory
