"""What each model family looks like when a user brings it: the facts a stand-in must copy.

One `FamilySpec` per family, keyed by a short name, each describing the published model it imitates
(`source_model`): the transformers config class and the family's distinctive settings at a tiny size,
the tokenizer's style, special tokens (names, order, flags), BOS/EOS/PAD/UNK as the published
tokenizer_config.json sets them, the token that ends an assistant turn, whether the input and output
embeddings are tied, and the names of the linear layers a LoRA targets.

Shapes are tiny (hidden 64, 2 layers, 4 heads, 2 KV heads where the family uses grouped-query
attention, intermediate a multiple of 64); everything else keeps the published value unless a
comment says otherwise. Token *ids* are not the published ones (the vocabulary is ~1k tokens, not
32k-262k), but the *order* of special tokens relative to each other and to the trained vocabulary is.
Facts that could not be checked against a published file are marked "(from memory)".

Pure data: importing this module imports nothing heavy.
"""

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Mapping

TokenizerStyle = Literal["byte_level_bpe", "sentencepiece_bpe"]

# Pre-tokenizer split regexes as the published tokenizer.json files have them.
# cl100k (Llama 3, OLMo 2): digits in runs of up to 3.
CL100K_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen 2 / 2.5 / 3: like cl100k but every digit on its own.
QWEN_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# o200k (Phi-4-mini): case-aware word pieces.
O200K_REGEX = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"\s*[\r\n]+",
    r"\s+(?!\S)",
    r"\s+",
])

LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PHI3_LINEARS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
NEOX_LINEARS = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")


@dataclass(frozen=True)
class Tok:
    """An added token with the flags the published tokenizer gives it."""

    content: str
    special: bool = True
    rstrip: bool = False  # True eats the whitespace after the token when encoding (Phi-3's chat tokens)
    lstrip: bool = False
    normalized: bool = False


def _toks(*names: str, **flags: bool) -> tuple[Tok, ...]:
    return tuple(Tok(name, **flags) for name in names)


@dataclass(frozen=True)
class FamilySpec:
    key: str
    source_model: str  # the published model this stands in for
    config_class: str  # transformers config class name
    model_class: str  # transformers causal-LM class name
    config_kwargs: Mapping[str, Any]  # tiny shape + the family's distinctive published settings
    tokenizer_style: TokenizerStyle
    tokenizer_class: str  # "tokenizer_class" as published in tokenizer_config.json
    # Tokens before the trained vocabulary (SentencePiece layout: ids 0.. then <0x00>..<0xFF>) and
    # tokens appended after it (the byte-level families, and chat tokens added later).
    leading_tokens: tuple[Tok, ...]
    trailing_tokens: tuple[Tok, ...]
    bos_token: str | None
    eos_token: str
    pad_token: str | None  # None: the published tokenizer_config sets no pad token
    unk_token: str | None
    # True: encoding with add_special_tokens=True puts BOS first (post-processor / add_bos_token).
    adds_bos: bool
    end_of_turn: str  # the token the model emits to end an assistant turn
    tie_word_embeddings: bool
    linear_names: tuple[str, ...]  # names of the nn.Linear modules inside one decoder layer
    lm_head_name: str  # the output head's module name in transformers 5 (always "lm_head")
    model_max_length: int
    chat_template: str | None  # file name under templates/, None for a base model
    split_regex: str | None = None  # byte-level: published split regex; None = ByteLevel's GPT-2 regex
    nfc: bool = False  # byte-level: NFC normalizer (Qwen, GPT-NeoX)
    ignore_merges: bool = False  # byte-level: BPE(ignore_merges=True) as Llama 3 publishes it
    # sentencepiece: "legacy" = Prepend("▁") normalizer (a "▁" before every text segment, also after
    # special tokens); "first" = Metaspace prepend_scheme="first"; "none" = Gemma, no dummy prefix.
    spm_prefix: Literal["legacy", "first", "none"] = "legacy"
    spm_raw_whitespace: bool = False  # Gemma: "\n" and "\t" are vocabulary tokens, not byte fallback
    tokenizer_config_extra: Mapping[str, Any] = field(default_factory=dict)  # other published flags
    # The head's name in the published checkpoint: GPT-NeoX saves "embed_out.weight", which
    # transformers 5 renames to lm_head on load (and back on save).
    head_checkpoint_name: str = "lm_head"

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """Every added token the published tokenizer marks special."""
        return tuple(t.content for t in self.leading_tokens + self.trailing_tokens if t.special)

    @property
    def head_weight_key(self) -> str | None:
        """The output head's key in model.safetensors; None when tied (only the embedding is saved)."""
        return None if self.tie_word_embeddings else f"{self.head_checkpoint_name}.weight"


def _frozen(**kwargs: Any) -> Mapping[str, Any]:
    return MappingProxyType(kwargs)


TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
BIG = 1000000000000000019884624838656  # model_max_length the Llama-2/Mistral/Phi-3 configs publish


def _rope(theta: float, **extra: Any) -> dict[str, Any]:
    return {"rope_type": "default", "rope_theta": theta, **extra}


# Llama 3 reserved tokens: the first of the 256 "<|reserved_special_token_N|>" slots are interleaved
# with the named ones exactly as in the published vocabulary (ids 128000..128011).
LLAMA3_TRAILING = _toks(
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|reserved_special_token_3|>", "<|reserved_special_token_4|>",
)
QWEN25_TRAILING = _toks(
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
) + _toks(  # published with "special": false: they are meant to be read and written as text
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", special=False,
)
QWEN3_TRAILING = QWEN25_TRAILING + _toks(
    "<tool_response>", "</tool_response>", "<think>", "</think>", special=False,
)
QWEN_EXTRA_SPECIAL = [t.content for t in QWEN25_TRAILING if t.special and t.content != "<|endoftext|>"]
# Published with an explicit "unk_token": null; without it transformers 5's Qwen2Tokenizer would
# default unk to "<|endoftext|>".
QWEN_CONFIG_EXTRA = MappingProxyType(dict(
    additional_special_tokens=QWEN_EXTRA_SPECIAL, add_prefix_space=False, clean_up_tokenization_spaces=False,
    errors="replace", split_special_tokens=False, unk_token=None,
))
# Phi-3 / Phi-3.5: Llama 2's 32000 pieces, then chat tokens at 32000..32010. The chat tokens (and
# </s>) are published with rstrip=True: encoding "<|end|>\n" swallows the "\n".
PHI3_LEADING = (Tok("<unk>"), Tok("<s>"), Tok("</s>", special=False, rstrip=True))
PHI3_TRAILING = (Tok("<|endoftext|>"),) + _toks(
    "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>", "<|placeholder4|>",
    "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>", rstrip=True,
)
GEMMA_LEADING = _toks("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
GEMMA_GELU = "gelu_pytorch_tanh"


def _longrope(rotary_dims: int, theta: float, partial: float = 1.0) -> dict[str, Any]:
    # Phi-3.5/Phi-4 publish 48 short and long factors (one per rotary channel pair). The shape is kept
    # (rotary_dims // 2 values); the values are a smooth ramp like the published ones, not copies.
    n = rotary_dims // 2
    return {
        "rope_type": "longrope", "rope_theta": theta, "partial_rotary_factor": partial,
        "short_factor": [round(1.0 + 0.05 * i / n, 4) for i in range(n)],
        "long_factor": [round(1.0 + 20.0 * (i / n) ** 2, 4) for i in range(n)],
    }


FAMILIES: dict[str, FamilySpec] = {
    "llama2": FamilySpec(
        key="llama2", source_model="meta-llama/Llama-2-7b-chat-hf",
        config_class="LlamaConfig", model_class="LlamaForCausalLM",
        config_kwargs=_frozen(**TINY, num_key_value_heads=4,  # 7B is multi-head, not GQA
                              max_position_embeddings=4096, rms_norm_eps=1e-5, rope_parameters=_rope(10000.0)),
        tokenizer_style="sentencepiece_bpe", tokenizer_class="LlamaTokenizer", spm_prefix="legacy",
        leading_tokens=_toks("<unk>", "<s>", "</s>"), trailing_tokens=(),
        bos_token="<s>", eos_token="</s>", pad_token=None, unk_token="<unk>", adds_bos=True,
        end_of_turn="</s>", tie_word_embeddings=False, linear_names=LLAMA_LINEARS, lm_head_name="lm_head",
        model_max_length=BIG, chat_template="llama2.jinja",
        tokenizer_config_extra=_frozen(add_bos_token=True, add_eos_token=False, legacy=False,
                                       clean_up_tokenization_spaces=False, padding_side="right",
                                       use_default_system_prompt=False, pad_token=None),
    ),
    "llama3": FamilySpec(
        key="llama3", source_model="meta-llama/Llama-3.2-1B-Instruct",
        config_class="LlamaConfig", model_class="LlamaForCausalLM",
        config_kwargs=_frozen(**TINY, num_key_value_heads=2, head_dim=16, max_position_embeddings=131072,
                              rms_norm_eps=1e-5, rope_parameters={
                                  "rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                  "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                  "original_max_position_embeddings": 8192}),
        tokenizer_style="byte_level_bpe", tokenizer_class="PreTrainedTokenizerFast",
        split_regex=CL100K_REGEX, ignore_merges=True,
        leading_tokens=(), trailing_tokens=LLAMA3_TRAILING,
        # The Instruct tokenizer_config.json names <|eot_id|> as eos_token (the base model: <|end_of_text|>).
        bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token=None, unk_token=None, adds_bos=True,
        end_of_turn="<|eot_id|>", tie_word_embeddings=True, linear_names=LLAMA_LINEARS, lm_head_name="lm_head",
        model_max_length=131072, chat_template="llama3.jinja",
        tokenizer_config_extra=_frozen(clean_up_tokenization_spaces=True),
    ),
    "mistral": FamilySpec(
        key="mistral", source_model="mistralai/Mistral-7B-Instruct-v0.3",
        config_class="MistralConfig", model_class="MistralForCausalLM",
        config_kwargs=_frozen(**TINY, num_key_value_heads=2, head_dim=16, max_position_embeddings=32768,
                              rms_norm_eps=1e-5, sliding_window=None, rope_parameters=_rope(1000000.0)),
        tokenizer_style="sentencepiece_bpe", tokenizer_class="LlamaTokenizer", spm_prefix="first",
        # v0.3 puts its control tokens right after </s> (ids 3..770), before the byte tokens.
        leading_tokens=_toks("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                             "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[control_8]",
                             "[control_9]", "[control_10]"),
        trailing_tokens=(),
        bos_token="<s>", eos_token="</s>", pad_token=None, unk_token="<unk>", adds_bos=True,
        end_of_turn="</s>", tie_word_embeddings=False, linear_names=LLAMA_LINEARS, lm_head_name="lm_head",
        model_max_length=BIG, chat_template="mistral.jinja",
        tokenizer_config_extra=_frozen(add_bos_token=True, add_eos_token=False, legacy=False,
                                       clean_up_tokenization_spaces=False, use_default_system_prompt=False),
    ),
    "qwen2": FamilySpec(
        key="qwen2", source_model="Qwen/Qwen2.5-0.5B-Instruct",
        config_class="Qwen2Config", model_class="Qwen2ForCausalLM",
        # q/k/v carry biases in every Qwen2 model (not configurable); 0.5B: 14 heads over 2 KV heads.
        config_kwargs=_frozen(**TINY, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                              use_sliding_window=False, sliding_window=32768, max_window_layers=2,
                              rope_parameters=_rope(1000000.0)),
        tokenizer_style="byte_level_bpe", tokenizer_class="Qwen2Tokenizer", split_regex=QWEN_REGEX, nfc=True,
        leading_tokens=(), trailing_tokens=QWEN25_TRAILING,
        bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, adds_bos=False,
        end_of_turn="<|im_end|>", tie_word_embeddings=True, linear_names=LLAMA_LINEARS, lm_head_name="lm_head",
        model_max_length=131072, chat_template="qwen2.jinja",
        tokenizer_config_extra=QWEN_CONFIG_EXTRA,
    ),
    "qwen3": FamilySpec(
        key="qwen3", source_model="Qwen/Qwen3-0.6B",
        config_class="Qwen3Config", model_class="Qwen3ForCausalLM",
        # head_dim is set apart from hidden/heads (0.6B: 16 x 128 = 2048 > hidden 1024); q/k RMS-norm.
        config_kwargs=_frozen(**TINY, num_key_value_heads=2, head_dim=32, max_position_embeddings=40960,
                              rms_norm_eps=1e-6, attention_bias=False, use_sliding_window=False,
                              sliding_window=None, max_window_layers=2, rope_parameters=_rope(1000000.0)),
        tokenizer_style="byte_level_bpe", tokenizer_class="Qwen2Tokenizer", split_regex=QWEN_REGEX, nfc=True,
        leading_tokens=(), trailing_tokens=QWEN3_TRAILING,
        bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, adds_bos=False,
        end_of_turn="<|im_end|>", tie_word_embeddings=True, linear_names=LLAMA_LINEARS, lm_head_name="lm_head",
        model_max_length=131072, chat_template="qwen3.jinja",
        tokenizer_config_extra=QWEN_CONFIG_EXTRA,
    ),
    "gemma2": FamilySpec(
        key="gemma2", source_model="google/gemma-2-2b-it",
        config_class="Gemma2Config", model_class="Gemma2ForCausalLM",
        # query_pre_attn_scalar = head_dim as in 2B (256/256); logit soft-capping 50 / 30; alternating
        # sliding (local) and full (global) attention layers. The window is shrunk from 4096 to 32
        # tokens so short test sequences actually cross it.
        config_kwargs=_frozen(**TINY, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
                              hidden_activation=GEMMA_GELU, max_position_embeddings=8192, rms_norm_eps=1e-6,
                              attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=32,
                              layer_types=["sliding_attention", "full_attention"], rope_parameters=_rope(10000.0)),
        tokenizer_style="sentencepiece_bpe", tokenizer_class="GemmaTokenizer", spm_prefix="none",
        spm_raw_whitespace=True,
        # (from memory) ids 5.. hold "[multimodal]" and <unusedN>; the turn markers follow them.
        leading_tokens=GEMMA_LEADING + _toks("[multimodal]", "<unused0>", "<unused1>", "<start_of_turn>",
                                             "<end_of_turn>"),
        trailing_tokens=(),
        bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>", adds_bos=True,
        end_of_turn="<end_of_turn>", tie_word_embeddings=True, linear_names=LLAMA_LINEARS, lm_head_name="lm_head",
        model_max_length=BIG, chat_template="gemma2.jinja",
        tokenizer_config_extra=_frozen(add_bos_token=True, add_eos_token=False, clean_up_tokenization_spaces=False,
                                       spaces_between_special_tokens=False, sp_model_kwargs={},
                                       additional_special_tokens=["<start_of_turn>", "<end_of_turn>"]),
    ),
    "gemma3": FamilySpec(
        key="gemma3", source_model="google/gemma-3-1b-it",
        config_class="Gemma3TextConfig", model_class="Gemma3ForCausalLM",
        # 1B: 4 query heads over ONE key/value head; q/k RMS-norm; local layers use their own RoPE
        # base (10k) and a 512-token window (shrunk to 32 here), global layers 1M; 5 local : 1 global
        # in the published 26 layers, one of each here.
        config_kwargs=_frozen(**TINY, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                              hidden_activation=GEMMA_GELU, max_position_embeddings=32768, rms_norm_eps=1e-6,
                              sliding_window=32, layer_types=["sliding_attention", "full_attention"],
                              final_logit_softcapping=None, attn_logit_softcapping=None,
                              rope_parameters={"full_attention": _rope(1000000.0),
                                               "sliding_attention": _rope(10000.0)}),
        tokenizer_style="sentencepiece_bpe", tokenizer_class="GemmaTokenizer", spm_prefix="none",
        spm_raw_whitespace=True,
        # (from memory) id 5 is "[@BOS@]"; the image tokens sit at the end of the vocabulary.
        leading_tokens=GEMMA_LEADING + _toks("[@BOS@]", "<unused0>", "<unused1>", "<start_of_turn>",
                                             "<end_of_turn>"),
        trailing_tokens=_toks("<start_of_image>", "<end_of_image>", "<image_soft_token>"),
        bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>", adds_bos=True,
        end_of_turn="<end_of_turn>", tie_word_embeddings=True, linear_names=LLAMA_LINEARS, lm_head_name="lm_head",
        model_max_length=BIG, chat_template="gemma3.jinja",
        tokenizer_config_extra=_frozen(add_bos_token=True, add_eos_token=False, clean_up_tokenization_spaces=False,
                                       spaces_between_special_tokens=False, sp_model_kwargs={}),
    ),
    "phi3": FamilySpec(
        key="phi3", source_model="microsoft/Phi-3-mini-4k-instruct",
        config_class="Phi3Config", model_class="Phi3ForCausalLM",
        config_kwargs=_frozen(**TINY, num_key_value_heads=4, max_position_embeddings=4096,
                              original_max_position_embeddings=4096, sliding_window=2047, rms_norm_eps=1e-5,
                              rope_parameters=_rope(10000.0, partial_rotary_factor=1.0)),
        # (from memory) Phi-3's tokenizer.json keeps Llama 2's legacy normalizer; transformers 5 loads
        # phi3 with that tokenizer.json as is (TokenizersBackend), so the legacy spacing is live.
        tokenizer_style="sentencepiece_bpe", tokenizer_class="LlamaTokenizer", spm_prefix="legacy",
        leading_tokens=PHI3_LEADING, trailing_tokens=PHI3_TRAILING,
        bos_token="<s>", eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<unk>",
        # The published tokenizer_config.json says add_bos_token: false (the chat template no longer
        # writes <s> either): plain encoding adds nothing.
        adds_bos=False,
        end_of_turn="<|end|>", tie_word_embeddings=False, linear_names=PHI3_LINEARS, lm_head_name="lm_head",
        model_max_length=4096, chat_template="phi3.jinja",
        tokenizer_config_extra=_frozen(add_bos_token=False, add_eos_token=False, legacy=False,
                                       clean_up_tokenization_spaces=False, padding_side="left",
                                       sp_model_kwargs={}, use_default_system_prompt=False),
    ),
    "phi35": FamilySpec(
        key="phi35", source_model="microsoft/Phi-3.5-mini-instruct",
        config_class="Phi3Config", model_class="Phi3ForCausalLM",
        config_kwargs=_frozen(**TINY, num_key_value_heads=4, max_position_embeddings=131072,
                              original_max_position_embeddings=4096, sliding_window=262144, rms_norm_eps=1e-5,
                              rope_parameters=_longrope(16, 10000.0)),
        tokenizer_style="sentencepiece_bpe", tokenizer_class="LlamaTokenizer", spm_prefix="legacy",
        leading_tokens=PHI3_LEADING, trailing_tokens=PHI3_TRAILING,
        bos_token="<s>", eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<unk>", adds_bos=False,
        end_of_turn="<|end|>", tie_word_embeddings=False, linear_names=PHI3_LINEARS, lm_head_name="lm_head",
        model_max_length=131072, chat_template="phi35.jinja",
        tokenizer_config_extra=_frozen(add_bos_token=False, add_eos_token=False, legacy=False,
                                       clean_up_tokenization_spaces=False, padding_side="left",
                                       sp_model_kwargs={}, use_default_system_prompt=False),
    ),
    "phi4": FamilySpec(
        key="phi4", source_model="microsoft/Phi-4-mini-instruct",
        config_class="Phi3Config", model_class="Phi3ForCausalLM",
        # Phi-4-mini: Phi3 architecture with grouped-query attention (24/8), RoPE on 3/4 of each head,
        # LongRoPE, and tied embeddings (200k vocabulary; tied per its config.json, from memory).
        config_kwargs=_frozen(**TINY, num_key_value_heads=2, max_position_embeddings=131072,
                              original_max_position_embeddings=4096, sliding_window=262144, rms_norm_eps=1e-5,
                              rope_parameters=_longrope(12, 10000.0, partial=0.75)),
        tokenizer_style="byte_level_bpe", tokenizer_class="GPT2Tokenizer", split_regex=O200K_REGEX,
        leading_tokens=(),
        trailing_tokens=_toks("<|endoftext|>", "<|endofprompt|>", "<|assistant|>", "<|end|>", "<|user|>",
                              "<|system|>", "<|tool|>", "<|/tool|>", "<|tool_call|>", "<|/tool_call|>",
                              "<|tool_response|>", "<|tag|>"),
        bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>",
        adds_bos=False,
        end_of_turn="<|end|>", tie_word_embeddings=True, linear_names=PHI3_LINEARS, lm_head_name="lm_head",
        model_max_length=131072, chat_template="phi4.jinja",
        tokenizer_config_extra=_frozen(add_prefix_space=False, clean_up_tokenization_spaces=False,
                                       errors="replace"),
    ),
    "olmo2": FamilySpec(
        key="olmo2", source_model="allenai/OLMo-2-1124-7B-Instruct",
        config_class="Olmo2Config", model_class="Olmo2ForCausalLM",
        # RMS-norm on the full q and k projections; norms after attention and MLP (not before).
        config_kwargs=_frozen(**TINY, num_key_value_heads=4, max_position_embeddings=4096, rms_norm_eps=1e-6,
                              attention_bias=False, rope_parameters=_rope(500000.0)),
        tokenizer_style="byte_level_bpe", tokenizer_class="GPT2Tokenizer", split_regex=CL100K_REGEX,
        leading_tokens=(),
        # <|user|>/<|assistant|>/<|system|> in OLMo 2's template are plain text, not tokens.
        # (from memory) the cl100k-derived ids 100257.. for these; <|pad|> is OLMo's own.
        trailing_tokens=_toks("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                              "<|endofprompt|>", "<|pad|>"),
        bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|pad|>", unk_token="<|endoftext|>",
        adds_bos=False,  # (from memory) the template writes bos_token itself
        end_of_turn="<|endoftext|>", tie_word_embeddings=False, linear_names=LLAMA_LINEARS,
        lm_head_name="lm_head", model_max_length=4096, chat_template="olmo2.jinja",
        tokenizer_config_extra=_frozen(add_prefix_space=False, clean_up_tokenization_spaces=False,
                                       errors="replace"),
    ),
    "gptneox": FamilySpec(
        key="gptneox", source_model="EleutherAI/pythia-70m",
        config_class="GPTNeoXConfig", model_class="GPTNeoXForCausalLM",
        # Parallel attention + MLP residual, RoPE on 1/4 of each head, biases everywhere, untied.
        config_kwargs=_frozen(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                              max_position_embeddings=2048, layer_norm_eps=1e-5, hidden_act="gelu",
                              use_parallel_residual=True, attention_bias=True,
                              rope_parameters=_rope(10000.0, partial_rotary_factor=0.25)),
        tokenizer_style="byte_level_bpe", tokenizer_class="GPTNeoXTokenizer", split_regex=None, nfc=True,
        leading_tokens=_toks("<|endoftext|>", "<|padding|>"),
        # GPT-NeoX adds runs of spaces as (non-special) tokens so indented code stays short.
        trailing_tokens=_toks("    ", "   ", "  ", special=False, normalized=True),
        bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token=None, unk_token="<|endoftext|>",
        adds_bos=False,
        end_of_turn="<|endoftext|>", tie_word_embeddings=False, linear_names=NEOX_LINEARS,
        lm_head_name="lm_head", head_checkpoint_name="embed_out", model_max_length=BIG, chat_template=None,
        tokenizer_config_extra=_frozen(add_prefix_space=False),
    ),
}
