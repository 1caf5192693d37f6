"""A Hugging Face model directory written as one GGUF file (llama.cpp, Ollama, LM Studio read it).

What llama.cpp's own converter (convert_hf_to_gguf.py) does for the Llama family, kept small:
hyper-parameters under the architecture's keys, tensors renamed with gguf's tensor map, the Q/K
rows of Llama-layout attention permuted (llama.cpp's rotary code pairs channels (i, i+d/2) of a head
as interleaved (2i, 2i+1)), 1-D tensors (norms, biases) kept in float32, and the byte-level BPE
tokenizer with its merges, special ids and chat template inside. The embedding table's padding rows
(the built-in model pads 263 ids to 320) get placeholder tokens `[PADn]` of type UNUSED, because
llama.cpp requires exactly one token per embedding row.

A family or tokenizer kind this writer does not know is reported by `unsupported_reason`, never
written half-right. Pure: no dagster; numpy, safetensors and gguf are imported here, torch lazily.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

QuantType = Literal["f16", "q8_0"]
# GGUF architecture per transformers model_type. Mistral (without sliding window) is written as
# llama, as llama.cpp does; qwen2 keeps its q/k/v biases and needs no Q/K permutation (NEOX rope).
ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}
PERMUTES_QK = {"llama", "mistral"}  # model_types whose Q/K rows are permuted
# The pre-tokenizer regex of Llama 3 (llama.cpp calls it "llama-bpe"): merges were learned on its pieces.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Q8_0 quantizes blocks of 32 values along a row; a row of another length stays f16.
Q8_BLOCK = 32


@dataclass(frozen=True)
class GgufFile:
    path: Path
    quant: QuantType
    size_bytes: int
    tensors: int
    tensor_types: dict[str, int]  # ggml type name -> number of tensors stored in it


def unsupported_reason(model_dir: Path) -> str | None:
    """Why this model cannot be written (None when it can): family, rope scaling or tokenizer kind."""
    config = _config(model_dir)
    model_type = config.get("model_type", "?")
    if model_type not in ARCHITECTURES:
        return f"{model_type} is not supported by the GGUF writer yet (supported: {', '.join(sorted(ARCHITECTURES))})"
    rope = _rope(config)
    if rope.get("rope_type", "default") != "default":
        return f"{model_type} with rope scaling {rope['rope_type']!r} is not supported by the GGUF writer yet (supported: plain rope)"
    if config.get("sliding_window") and model_type == "mistral":
        return "mistral with a sliding window is not supported by the GGUF writer yet (llama.cpp's llama architecture has none)"
    _, reason = _tokenizer_kind(model_dir, model_type)
    return reason


def write_gguf(model_dir: Path, out_path: Path, quant: QuantType, name: str) -> GgufFile:
    """Write `model_dir` (config.json, *.safetensors, tokenizer.json) as `out_path` in `quant`."""
    import gguf

    reason = unsupported_reason(model_dir)
    if reason:
        raise ValueError(f"{model_dir}: {reason}")
    config = _config(model_dir)
    arch = ARCHITECTURES[config["model_type"]]
    writer = _writer(str(out_path), arch)
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_hyperparameters(writer, config)
    _add_tokenizer(writer, model_dir, config)
    types: dict[str, int] = {}
    count = 0
    for gguf_name, array in _tensors(model_dir, config, arch):
        data, qtype = _encode(array, quant)
        writer.add_tensor(gguf_name, data, raw_dtype=qtype)
        types[qtype.name] = types.get(qtype.name, 0) + 1
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return GgufFile(out_path, quant, out_path.stat().st_size, count, types)


def _writer(path: str, arch: str) -> Any:
    """A gguf.GGUFWriter that can also write an empty string array: a BPE vocabulary without merges
    (the built-in byte tokenizer) still needs the `tokenizer.ggml.merges` key, llama.cpp refuses a
    gpt2-type vocabulary without it, and GGUFWriter refuses empty arrays (the format allows them)."""

    import gguf

    class Writer(gguf.GGUFWriter):
        def _pack_val(self, val: Any, vtype: Any, add_vtype: bool, sub_type: Any = None) -> bytes:
            if vtype == gguf.GGUFValueType.ARRAY and sub_type is not None and len(val) == 0:
                prefix = self._pack("I", vtype) if add_vtype else b""
                return prefix + self._pack("I", sub_type) + self._pack("Q", 0)
            return super()._pack_val(val, vtype, add_vtype, sub_type)

    return Writer(path, arch)


def gguf_tensors(model_dir: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor the GGUF of `model_dir` will hold, under its GGUF name."""
    config = _config(model_dir)
    return {name: tuple(array.shape) for name, array in _tensors(model_dir, config, ARCHITECTURES[config["model_type"]])}


def _config(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))


def _rope(config: dict) -> dict:
    """transformers 5 keeps rope settings in `rope_parameters`; older configs in rope_theta/rope_scaling."""
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    rope.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    return rope


def _head_dim(config: dict) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def _add_hyperparameters(writer: Any, config: dict) -> None:
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads") or config["num_attention_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(float(_rope(config)["rope_theta"]))
    writer.add_rope_dimension_count(_head_dim(config))
    writer.add_vocab_size(config["vocab_size"])


def _tokenizer_json(model_dir: Path) -> dict | None:
    path = Path(model_dir) / "tokenizer.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _tokenizer_kind(model_dir: Path, model_type: str) -> tuple[str | None, str | None]:
    """(llama.cpp pre-tokenizer name, None) for a byte-level BPE tokenizer it can reproduce, else (None, reason)."""
    spec = _tokenizer_json(model_dir)
    if spec is None:
        return None, f"{model_dir} has no tokenizer.json; the GGUF writer needs a fast (byte-level BPE) tokenizer"
    model = spec.get("model") or {}
    text = json.dumps(spec.get("pre_tokenizer")) + json.dumps(spec.get("decoder"))
    if model.get("type") != "BPE" or model.get("byte_fallback") or "ByteLevel" not in text:
        return None, (f"{model_type} with a {model.get('type', '?')} tokenizer that is not byte-level BPE (SentencePiece-style) "
                      "is not supported by the GGUF writer yet (supported: byte-level BPE)")
    if not model.get("merges"):
        return "default", None  # no merges: every byte is a token whatever the text is split on
    if model_type == "qwen2":
        return "qwen2", None
    if json.dumps(LLAMA3_SPLIT)[1:-1] in json.dumps(spec.get("pre_tokenizer")):
        return "llama-bpe", None
    return None, f"{model_type} with a pre-tokenizer the GGUF writer does not recognise (supported: Llama 3, Qwen2, none)"


def _add_tokenizer(writer: Any, model_dir: Path, config: dict) -> None:
    import gguf

    from assets.models.chat_format import chat_format
    from assets.models.loading import load_tokenizer

    spec = _tokenizer_json(model_dir)
    pre, _ = _tokenizer_kind(model_dir, config["model_type"])
    by_id = {index: (token, gguf.TokenType.NORMAL) for token, index in spec["model"]["vocab"].items()}
    for added in spec.get("added_tokens", []):
        by_id[added["id"]] = (added["content"], gguf.TokenType.CONTROL if added["special"] else gguf.TokenType.USER_DEFINED)
    rows = config["vocab_size"]
    if max(by_id) >= rows:
        raise ValueError(f"{model_dir}: the tokenizer has ids up to {max(by_id)}, more than the {rows} embedding rows")
    tokens = [by_id.get(i, (f"[PAD{i}]", gguf.TokenType.UNUSED)) for i in range(rows)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges") or []]

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list([t for t, _ in tokens])
    writer.add_token_types([int(k) for _, k in tokens])
    # Scores are not used by a BPE vocabulary; transformers' GGUF reader wants them to rebuild merges.
    writer.add_token_scores([0.0] * rows)
    writer.add_key_value(gguf.Keys.Tokenizer.MERGES, merges, gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.STRING)

    tokenizer = load_tokenizer(model_dir)
    fmt = chat_format(tokenizer)
    for setter, value in ((writer.add_bos_token_id, tokenizer.bos_token_id), (writer.add_eos_token_id, tokenizer.eos_token_id),
                          (writer.add_pad_token_id, tokenizer.pad_token_id), (writer.add_eot_token_id, fmt.end_of_turn_id)):
        if value is not None:
            setter(value)
    writer.add_add_bos_token(fmt.adds_bos)  # the built-in template writes BOS itself; encoding adds none
    writer.add_add_eos_token(False)
    if isinstance(tokenizer.chat_template, str):
        writer.add_chat_template(tokenizer.chat_template)


def _tensors(model_dir: Path, config: dict, arch: str):
    """(gguf name, float32 array) of every weight, in file order, Q/K permuted where llama.cpp wants it."""
    import gguf
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise ValueError(f"{model_dir}: no *.safetensors weights")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], config["num_hidden_layers"])
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    for file in files:
        with safe_open(str(file), framework="pt") as weights:
            for hf_name in weights.keys():
                if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
                    continue  # llama.cpp reuses token_embd when output.weight is absent
                if hf_name.endswith("rotary_emb.inv_freq"):
                    continue  # recomputed from rope.freq_base
                gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise ValueError(f"{file}: tensor {hf_name!r} has no GGUF name for architecture {arch}")
                array = weights.get_tensor(hf_name).float().numpy()
                if config["model_type"] in PERMUTES_QK:
                    if hf_name.endswith("self_attn.q_proj.weight"):
                        array = _permute(array, heads)
                    elif hf_name.endswith("self_attn.k_proj.weight"):
                        array = _permute(array, kv_heads)
                yield gguf_name, array


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF's rotate-half layout -> llama.cpp's interleaved pairs, per head (convert_hf_to_gguf's permute)."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _encode(array: np.ndarray, quant: QuantType) -> tuple[np.ndarray, Any]:
    """(bytes or values to store, ggml type): 1-D tensors stay float32 as in llama.cpp's files."""
    import gguf
    from gguf import GGMLQuantizationType as T

    if array.ndim == 1:
        return array.astype(np.float32), T.F32
    if quant == "q8_0" and array.shape[-1] % Q8_BLOCK == 0:
        return gguf.quants.quantize(array, T.Q8_0), T.Q8_0
    return array.astype(np.float16), T.F16
