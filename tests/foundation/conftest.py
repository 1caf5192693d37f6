"""Shared fixtures of the foundation tests: real tiny models on disk, written once per session."""

import shutil
from pathlib import Path

import pytest

from assets.foundation.tiny_llama import TinyLlamaSpec, save_tiny_llama


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in tiny Llama as a plain HF directory. Read-only: copy it before editing."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def other_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.safetensors of the same shape but another seed: "new weights" for an in-place edit."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-seed1") / "model", TinyLlamaSpec(seed=1)) / "model.safetensors"


@pytest.fixture
def model_copy(tiny_model: Path, tmp_path: Path) -> Path:
    """A private, editable copy of the tiny model."""
    return Path(shutil.copytree(tiny_model, tmp_path / "user-model"))


@pytest.fixture
def pickled_model(model_copy: Path) -> Path:
    """The tiny model with its weights only as a pickled pytorch_model.bin (how older repos ship)."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(model_copy / "model.safetensors")
    (model_copy / "model.safetensors").unlink()
    torch.save(tensors, model_copy / "pytorch_model.bin")
    return model_copy
