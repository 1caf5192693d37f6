"""A base whose tokenizer ships only as a SentencePiece `tokenizer.model` (no tokenizer.json), as older
Llama/Mistral exports do: transformers converts it with the `sentencepiece` library, and the masks,
BOS convention and round trip work on the converted tokenizer like on any other."""

import json
from pathlib import Path

import pytest

from assets.models.chat_format import chat_format
from assets.models.loading import load_tokenizer
from assets.tokenization.formatting import encode_chat, round_trip_mismatch, supervised_runs

CORPUS = Path(__file__).resolve().parents[1] / "families" / "corpus.txt"
LLAMA2_LIKE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
               "{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sentencepiece as spm

    root = tmp_path_factory.mktemp("spm")
    spm.SentencePieceTrainer.train(
        input=str(CORPUS), model_prefix=str(root / "sp"), vocab_size=800, model_type="bpe", byte_fallback=True,
        character_coverage=1.0, num_threads=1, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
    )
    directory = root / "model"
    directory.mkdir()
    (root / "sp.model").rename(directory / "tokenizer.model")
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "chat_template": LLAMA2_LIKE,
    }))
    return directory


def test_a_tokenizer_model_alone_loads_and_masks_exactly_the_answer(model_dir: Path) -> None:
    tokenizer = load_tokenizer(model_dir)
    assert not (model_dir / "tokenizer.json").exists() and tokenizer.pad_token == "<unk>"
    fmt = chat_format(tokenizer)
    assert fmt.end_of_turn == "</s>" and fmt.adds_bos and fmt.renders_bos
    roles, contents = ["user", "assistant"], ["What is up?", "Not much, café. 🙂"]
    [example] = encode_chat(tokenizer, fmt, roles, contents, 256).examples
    assert example.input_ids.count(tokenizer.bos_token_id) == 1  # written by the template, not added again
    assert [tokenizer.decode(run) for run in supervised_runs(example.input_ids, example.labels)] == ["Not much, café. 🙂 </s>"]
    assert round_trip_mismatch(tokenizer, fmt, roles, contents, 256) is None
