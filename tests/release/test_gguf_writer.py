"""GGUF export of the built-in tiny Llama (assets/release/gguf/: writer.py, check.py, export.py):
read back with gguf's own reader (metadata, tensor names and shapes, tokenizer), and loaded through
transformers' GGUF loader, whose logits match the Hugging Face model's.

Tolerances, relative to the largest |logit| (~1 for this model): f16 weights measure ~4e-4 and are held
to 1e-2 (the asset's default); q8_0 (int8 blocks of 32 with one f16 scale) measures ~1.3e-2 and is held
to 5e-2: looser, because each weight is rounded to 1/127 of its block's largest value.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, TokenType

from assets.foundation.tiny_llama import CHAT_TEMPLATE, SPECIAL_TOKENS
from assets.release.gguf.check import logit_parity, read_back
from assets.release.gguf.export import export_gguf
from assets.release.gguf.writer import _permute, unsupported_reason, write_gguf
from assets.settings.gguf import GgufConfig

F16_TOLERANCE, Q8_TOLERANCE = 1e-2, 5e-2
LAYERS = 2
PER_LAYER = ("attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
             "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from assets.foundation.tiny_llama import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def files(base: Path, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("gguf")
    return {quant: write_gguf(base, out / f"tiny-{quant}.gguf", quant, "loraline-tiny").path for quant in ("f16", "q8_0")}


@pytest.fixture(scope="module")
def inputs(base: Path) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    chats = ([{"role": "user", "content": "My router keeps dropping Wi-Fi."}, {"role": "assistant", "content": "Restart it, then update the firmware."}],
             [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Héllo wörld ✓"}])
    return [tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"] for chat in chats]


def test_metadata_names_the_llama_architecture_and_its_hyperparameters(files: dict[str, Path]) -> None:
    fields = GGUFReader(str(files["f16"])).fields
    value = {key: fields[key].contents() for key in fields}
    assert value["general.architecture"] == "llama" and value["general.name"] == "loraline-tiny"
    assert value["general.file_type"] == 1  # MOSTLY_F16
    assert (value["llama.embedding_length"], value["llama.feed_forward_length"], value["llama.block_count"]) == (128, 256, LAYERS)
    assert (value["llama.attention.head_count"], value["llama.attention.head_count_kv"], value["llama.rope.dimension_count"]) == (4, 2, 32)
    assert value["llama.context_length"] == 2048 and value["llama.vocab_size"] == 320
    assert value["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert GGUFReader(str(files["q8_0"])).fields["general.file_type"].contents() == 7  # MOSTLY_Q8_0


def test_tensors_have_llama_cpp_names_and_the_model_shapes(files: dict[str, Path]) -> None:
    back = read_back(files["f16"])
    expected = {"token_embd.weight", "output_norm.weight", "output.weight",
                *(f"blk.{i}.{leaf}" for i in range(LAYERS) for leaf in PER_LAYER)}
    assert set(back.tensors) == expected
    assert back.tensors["token_embd.weight"] == (320, 128) and back.tensors["output.weight"] == (320, 128)
    assert back.tensors["blk.0.attn_k.weight"] == (64, 128) and back.tensors["blk.1.ffn_down.weight"] == (128, 256)
    # Norms stay float32; every matrix is f16 in the f16 file and Q8_0 in the q8_0 file.
    assert {back.tensor_types[n] for n in back.tensors if n.endswith("norm.weight")} == {"F32"}
    assert {t for n, t in back.tensor_types.items() if not n.endswith("norm.weight")} == {"F16"}
    assert {t for n, t in read_back(files["q8_0"]).tensor_types.items() if not n.endswith("norm.weight")} == {"Q8_0"}


def test_q_and_k_rows_are_permuted_the_way_llama_cpp_expects(base: Path, files: dict[str, Path]) -> None:
    from safetensors import safe_open

    tensors = {t.name: np.asarray(t.data) for t in GGUFReader(str(files["f16"])).tensors}
    with safe_open(str(base / "model.safetensors"), framework="pt") as weights:
        q = weights.get_tensor("model.layers.0.self_attn.q_proj.weight").numpy()
        k = weights.get_tensor("model.layers.0.self_attn.k_proj.weight").numpy()
        v = weights.get_tensor("model.layers.0.self_attn.v_proj.weight").numpy()
    np.testing.assert_allclose(tensors["blk.0.attn_q.weight"], _permute(q, 4).astype(np.float16), rtol=0, atol=0)
    np.testing.assert_allclose(tensors["blk.0.attn_k.weight"], _permute(k, 2).astype(np.float16), rtol=0, atol=0)
    np.testing.assert_allclose(tensors["blk.0.attn_v.weight"], v.astype(np.float16), rtol=0, atol=0)  # V is not rotated
    assert not np.array_equal(_permute(q, 4), q)


def test_tokenizer_is_inside_with_special_ids_and_chat_template(files: dict[str, Path]) -> None:
    fields = GGUFReader(str(files["f16"])).fields
    tokens = fields["tokenizer.ggml.tokens"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    assert fields["tokenizer.ggml.model"].contents() == "gpt2" and fields["tokenizer.ggml.pre"].contents() == "default"
    assert len(tokens) == 320  # one token per embedding row: 263 real ids + 57 placeholders
    assert tokens[256:263] == list(SPECIAL_TOKENS) and set(types[256:263]) == {TokenType.CONTROL}
    assert tokens[263] == "[PAD263]" and set(types[263:]) == {TokenType.UNUSED}
    assert set(types[:256]) == {TokenType.NORMAL} and tokens[32] == "Ġ"  # the byte-level alphabet (space)
    assert fields["tokenizer.ggml.merges"].contents() == []  # present, empty: llama.cpp requires the key
    ids = {key: fields[f"tokenizer.ggml.{key}_token_id"].contents() for key in ("bos", "eos", "padding")}
    assert ids == {"bos": 256, "eos": 257, "padding": 258}
    assert fields["tokenizer.ggml.add_bos_token"].contents() is False  # the template writes BOS itself
    assert fields["tokenizer.chat_template"].contents() == CHAT_TEMPLATE


def test_transformers_reads_the_tokenizer_back_identically(base: Path, files: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    original = AutoTokenizer.from_pretrained(base)
    loaded = AutoTokenizer.from_pretrained(files["f16"].parent, gguf_file=files["f16"].name)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Héllo wörld ✓ <|end|>"}]
    text = original.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert loaded(text)["input_ids"] == original(text)["input_ids"]
    assert loaded.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == text
    assert (loaded.bos_token, loaded.eos_token) == ("<|begin_of_text|>", "<|end_of_text|>")


def test_f16_logits_through_transformers_match_the_model(base: Path, files: dict[str, Path], inputs: list[list[int]]) -> None:
    parity = logit_parity(base, files["f16"], inputs)
    assert parity.relative_diff < F16_TOLERANCE, parity
    assert parity.max_abs_diff > 0  # f16 rounding is real: the comparison did run on the file


def test_q8_0_logits_are_looser_but_close(base: Path, files: dict[str, Path], inputs: list[list[int]]) -> None:
    parity = logit_parity(base, files["q8_0"], inputs)
    assert parity.relative_diff < Q8_TOLERANCE, parity
    assert files["q8_0"].stat().st_size < 0.6 * files["f16"].stat().st_size


def test_export_writes_files_modelfile_and_passes_its_own_checks(base: Path, inputs: list[list[int]], tmp_path: Path) -> None:
    report = export_gguf(base, tmp_path, "support", GgufConfig(), inputs)
    assert not report.skipped and report.problems == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Modelfile", "support-f16.gguf", "support-q8_0.gguf"]
    assert report.parity.relative_diff < F16_TOLERANCE and set(report.reloaded) == {"f16", "q8_0"}
    modelfile = (tmp_path / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./support-q8_0.gguf\nTEMPLATE \"\"\"") and 'PARAMETER stop "<|end_of_text|>"' in modelfile
    assert json.dumps(report.summary())  # what the asset stores as export.json and metadata


def _copy_with(base: Path, tmp_path: Path, file: str, change) -> Path:
    copy = Path(shutil.copytree(base, tmp_path / "model"))
    spec = json.loads((copy / file).read_text())
    change(spec)
    (copy / file).write_text(json.dumps(spec))
    return copy


def test_an_unsupported_family_is_skipped_with_the_reason(base: Path, tmp_path: Path) -> None:
    gpt2 = _copy_with(base, tmp_path, "config.json", lambda c: c.update(model_type="gpt2"))
    reason = unsupported_reason(gpt2)
    assert reason == "gpt2 is not supported by the GGUF writer yet (supported: llama, mistral, qwen2)"
    out = tmp_path / "out"
    out.mkdir()
    report = export_gguf(gpt2, out, "support", GgufConfig(), [[1, 2, 3]])
    assert report.skipped == reason and report.summary() == {"skipped": reason}
    assert [p.name for p in out.iterdir()] == ["skipped.txt"]
    with pytest.raises(ValueError, match="gpt2 is not supported"):
        write_gguf(gpt2, out / "x.gguf", "f16", "x")


def test_a_sentencepiece_style_tokenizer_is_skipped_with_the_reason(base: Path, tmp_path: Path) -> None:
    spm = _copy_with(base, tmp_path, "tokenizer.json", lambda t: t["model"].update(byte_fallback=True))
    assert "not byte-level BPE (SentencePiece-style) is not supported by the GGUF writer yet" in unsupported_reason(spm)


def test_rope_scaling_is_refused_not_written_wrong(base: Path, tmp_path: Path) -> None:
    scaled = _copy_with(base, tmp_path, "config.json",
                        lambda c: c.update(rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}))
    assert "rope scaling 'llama3' is not supported" in unsupported_reason(scaled)


def test_settings_require_f16_and_known_types() -> None:
    with pytest.raises(ValueError, match="must include 'f16'"):
        GgufConfig(quant_types=["q8_0"])
    with pytest.raises(ValueError, match="unknown"):
        GgufConfig(quant_types=["f16", "q4_k"])
