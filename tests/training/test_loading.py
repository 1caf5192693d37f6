"""Device, dtype and tokenizer choices for loading the base (assets/training/loading.py)."""

import pytest
import torch

from assets.foundation.tiny_llama import build_tokenizer
from assets.models.loading import (
    AUTO_DTYPE_VARIABLE,
    cpu_flags,
    cpu_has_native_bf16,
    load_tokenizer,
    pick_compute_dtype,
    pick_device,
    pick_pad_token,
)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_explicit_dtypes_are_honoured(device):
    assert pick_compute_dtype("float32", device) is torch.float32
    assert pick_compute_dtype("bfloat16", device) is torch.bfloat16


def test_auto_on_cpu_follows_native_bf16_support(monkeypatch):
    monkeypatch.delenv(AUTO_DTYPE_VARIABLE, raising=False)  # what the machine picks unforced
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert pick_compute_dtype("auto", "cpu") is expected


@pytest.mark.parametrize("forced", ["bfloat16", "float32"])
@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
def test_the_variable_forces_auto_either_way_and_leaves_explicit_choices_alone(monkeypatch, forced, device):
    monkeypatch.setenv(AUTO_DTYPE_VARIABLE, forced)
    assert pick_compute_dtype("auto", device) is getattr(torch, forced)
    assert pick_compute_dtype("float32", device) is torch.float32
    assert pick_compute_dtype("bfloat16", device) is torch.bfloat16


def test_the_variable_is_read_at_each_call_not_at_import(monkeypatch):
    monkeypatch.delenv(AUTO_DTYPE_VARIABLE, raising=False)
    native = pick_compute_dtype("auto", "cpu")
    other = "float32" if native is torch.bfloat16 else "bfloat16"
    monkeypatch.setenv(AUTO_DTYPE_VARIABLE, other)
    assert pick_compute_dtype("auto", "cpu") is getattr(torch, other)
    monkeypatch.setenv(AUTO_DTYPE_VARIABLE, "")  # empty counts as unset
    assert pick_compute_dtype("auto", "cpu") is native


@pytest.mark.parametrize("value", ["fp32", "bf16", "float16", "BFLOAT16", " float32"])
def test_an_invalid_value_names_the_variable_and_the_allowed_values(monkeypatch, value):
    monkeypatch.setenv(AUTO_DTYPE_VARIABLE, value)
    with pytest.raises(ValueError, match=rf"LORALINE_AUTO_DTYPE={value!r} is not .* use one of bfloat16, float32"):
        pick_compute_dtype("auto", "cpu")
    assert pick_compute_dtype("float32", "cpu") is torch.float32  # not consulted for an explicit choice


def test_auto_on_an_indexed_cuda_device_asks_cuda_not_the_cpu(monkeypatch):
    # torchrun hands each process "cuda:N"; that must not fall through to the CPU's flags.
    monkeypatch.delenv(AUTO_DTYPE_VARIABLE, raising=False)
    assert pick_compute_dtype("auto", "cuda:1") is pick_compute_dtype("auto", "cuda")


def test_cpu_has_native_bf16_reads_cpu_flags():
    from pathlib import Path

    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    assert cpu_flags() == frozenset(flags)
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)
    assert isinstance(cpu_has_native_bf16(), bool)


def test_pick_device_cpu_and_auto():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device() == pick_device("auto")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_pick_device_cuda_without_cuda_raises_clearly():
    with pytest.raises(RuntimeError, match="'cuda' was requested but torch sees no CUDA device"):
        pick_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pick_device_cuda_with_cuda():
    assert pick_device("cuda") == "cuda"


def test_load_tokenizer_keeps_an_existing_pad_token(tmp_path):
    build_tokenizer().save_pretrained(tmp_path)
    tokenizer = load_tokenizer(tmp_path)
    assert tokenizer.pad_token == "<|pad|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_a_missing_pad_token_is_an_existing_token_never_a_new_one(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tokenizer = build_tokenizer()
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).pad_token is None  # really saved without one
    loaded = load_tokenizer(tmp_path)
    # The vocabulary holds an unnamed "<|pad|>": it is taken, and the vocabulary does not grow.
    assert loaded.pad_token == "<|pad|>" and len(loaded) == len(tokenizer)
    assert loaded(["a", "abc"], padding=True)["input_ids"][0] == [97, loaded.pad_token_id, loaded.pad_token_id]

    # No padding-like token: unk, then EOS.
    words = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0, "</s>": 1, "a": 2}, unk_token="[UNK]")),
                                    eos_token="</s>", unk_token="[UNK]")
    assert pick_pad_token(words) == "[UNK]"
    words.unk_token = None
    assert pick_pad_token(words) == "</s>"
    words.eos_token = None
    with pytest.raises(ValueError, match="no pad, unk or end-of-sequence token"):
        pick_pad_token(words)


def test_load_tokenizer_keeps_chat_template(tmp_path):
    original = build_tokenizer()
    original.save_pretrained(tmp_path)
    assert load_tokenizer(tmp_path).chat_template == original.chat_template
