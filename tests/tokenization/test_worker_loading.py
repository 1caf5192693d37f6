"""Tokenization workers load their tokenizer without torch (streaming.load_tokenizer_without_torch),
and it is the tokenizer loading.load_tokenizer gives: same class, special tokens, template, encodings."""

import subprocess
import sys
from pathlib import Path

import pytest

from assets.foundation.tiny_llama import build_tokenizer
from assets.models.chat_format import chat_format
from assets.models.loading import load_tokenizer
from assets.tokenization.streaming import load_tokenizer_without_torch

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["Hello there", "  spaced\n\nlines\t<|end|> and <|im_end|> inline", "Ünïcödé café 東京 🙂", "<think>x</think>Done."]
FAMILIES = ["llama2", "llama3", "mistral", "qwen2", "qwen3", "gemma2", "phi3"]


def _save(name: str, directory: Path) -> Path:
    if name == "builtin":
        build_tokenizer().save_pretrained(directory)
        return directory
    sys.path.insert(0, str(ROOT / "tests" / "families"))
    from family_specs import FAMILIES as SPECS
    from family_tokenizers import save_tokenizer

    save_tokenizer(SPECS[name], directory)
    return directory


@pytest.mark.parametrize("name", ["builtin", *FAMILIES])
def test_the_light_loader_gives_load_tokenizers_tokenizer(name: str, tmp_path: Path) -> None:
    directory = _save(name, tmp_path / name)
    light, auto = load_tokenizer_without_torch(directory), load_tokenizer(directory)
    assert type(light) is type(auto)
    assert light.special_tokens_map == auto.special_tokens_map and light.pad_token == auto.pad_token
    assert light.chat_template == auto.chat_template and light.split_special_tokens == auto.split_special_tokens
    assert {i: str(t) for i, t in light.added_tokens_decoder.items()} == {i: str(t) for i, t in auto.added_tokens_decoder.items()}
    assert chat_format(light) == chat_format(auto)
    for special in (True, False):
        assert light(TEXTS, add_special_tokens=special, return_offsets_mapping=True).data == \
               auto(TEXTS, add_special_tokens=special, return_offsets_mapping=True).data


@pytest.mark.integration
def test_a_worker_never_imports_torch(tmp_path: Path) -> None:
    """What a spawned worker runs (_load, then a chunk), in a fresh interpreter: torch and datasets
    stay out (the parent passes the Arrow schema)."""
    directory = _save("qwen2", tmp_path / "tok")
    code = (
        "import sys, pyarrow as pa\n"
        "from assets.settings.tokenization import TokenizationConfig\n"
        "from assets.tokenization import streaming\n"
        f"streaming._load({str(directory)!r})\n"
        "schema = pa.schema([('input_ids', pa.list_(pa.int32())), ('labels', pa.list_(pa.int64())), ('length', pa.int64()),\n"
        "    ('source_file', pa.string()), ('line', pa.int64())])\n"
        "batch = pa.RecordBatch.from_pydict({'kind': ['chat', 'text'], 'roles': [['user', 'assistant'], ['text']],\n"
        "    'contents': [['Hi', 'Hello!'], ['A note.']], 'content_hash': ['a', 'b'], 'split_key': ['a', 'b'],\n"
        "    'source_file': ['f', 'f'], 'line': [1, 2]})\n"
        "chunk = streaming._work(batch, TokenizationConfig(max_seq_len=64), schema)\n"
        "print(chunk.rows, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'datasets')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["2", "[]"], done.stdout + done.stderr
