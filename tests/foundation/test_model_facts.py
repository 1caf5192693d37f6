"""Native architectures only, and what a base loads as (assets/foundation/model_facts.py)."""

import json
from pathlib import Path

import pytest

from assets.foundation.model_facts import check_native_architecture, model_facts, read_config
from assets.foundation.resolve import resolve_base_model
from assets.foundation.tiny_llama import BOS, EOS, PAD
from assets.settings.base_model import parse_base_model_spec

CUSTOM_AUTO_MAP = {"AutoConfig": "configuration_mymodel.MyConfig", "AutoModelForCausalLM": "modeling_mymodel.MyForCausalLM"}


def edit_config(directory: Path, **changes) -> None:
    config = json.loads((directory / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (directory / "config.json").write_text(json.dumps(config))


def save_config(directory: Path, config) -> Path:
    config.save_pretrained(directory)
    return directory


# --- the native-architecture rule ---------------------------------------------------------------

def test_unknown_model_type_is_refused_with_the_reason(model_copy):
    edit_config(model_copy, model_type="my-secret-llm")
    with pytest.raises(ValueError) as raised:
        check_native_architecture(read_config(model_copy), str(model_copy / "config.json"))
    message = str(raised.value)
    assert "'my-secret-llm'" in message and str(model_copy / "config.json") in message
    assert "trust_remote_code" in message and "natively" in message


def test_unknown_model_type_with_auto_map_names_the_custom_code(model_copy):
    edit_config(model_copy, model_type="mymodel", auto_map=CUSTOM_AUTO_MAP)
    with pytest.raises(ValueError, match="'mymodel'") as raised:
        check_native_architecture(read_config(model_copy), "config.json")
    assert "modeling_mymodel.MyForCausalLM" in str(raised.value) and "trust_remote_code" in str(raised.value)


def test_a_model_type_without_a_causal_lm_class_is_refused(model_copy):
    edit_config(model_copy, model_type="t5")
    with pytest.raises(ValueError, match="model_type 't5', which transformers has no causal language model class for"):
        check_native_architecture(read_config(model_copy), str(model_copy / "config.json"))


def test_config_without_model_type_is_refused(model_copy):
    edit_config(model_copy, model_type=None)
    with pytest.raises(ValueError, match="has no model_type") as raised:
        check_native_architecture(read_config(model_copy), "config.json")
    assert "trust_remote_code" in str(raised.value)


def test_known_model_type_with_leftover_auto_map_loads_natively(model_copy):
    edit_config(model_copy, auto_map=CUSTOM_AUTO_MAP)
    check_native_architecture(read_config(model_copy), "config.json")  # no error
    assert model_facts(model_copy).auto_map == "ignored: model_type 'llama' loads natively"


def test_local_base_with_custom_code_is_refused_before_anything_is_copied(model_copy, tmp_path):
    edit_config(model_copy, model_type="mymodel", auto_map=CUSTOM_AUTO_MAP)
    with pytest.raises(ValueError, match="'mymodel'.*trust_remote_code"):
        resolve_base_model(parse_base_model_spec(str(model_copy)), tmp_path / "root")
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_unreadable_config_names_the_file(model_copy, text):
    (model_copy / "config.json").write_text(text)
    with pytest.raises(ValueError, match=str(model_copy / "config.json")):
        read_config(model_copy)


# --- facts --------------------------------------------------------------------------------------

def test_facts_of_the_tiny_llama(tiny_model):
    facts = model_facts(tiny_model)
    assert facts.architecture == "LlamaForCausalLM" and facts.model_type == "llama"
    assert facts.context_length == 2048
    assert facts.tie_word_embeddings is False
    assert facts.dtype == "float32"
    assert facts.chat_template is True  # from chat_template.jinja
    assert (facts.bos_token, facts.eos_token, facts.pad_token) == (BOS, EOS, PAD)
    assert (facts.hidden_size, facts.num_hidden_layers, facts.vocab_size) == (128, 2, 320)
    assert facts.auto_map == "-"
    assert set(facts.as_metadata()) >= {"architecture", "context_length", "tie_word_embeddings", "dtype", "chat_template",
                                        "bos_token", "eos_token", "pad_token"}


def test_chat_template_in_tokenizer_config_and_added_token_dicts(model_copy):
    (model_copy / "chat_template.jinja").unlink()
    tokenizer_config = json.loads((model_copy / "tokenizer_config.json").read_text())
    assert model_facts(model_copy).chat_template is False
    tokenizer_config["chat_template"] = "{{ messages }}"
    tokenizer_config.pop("pad_token")
    tokenizer_config["eos_token"] = {"content": "</s>", "lstrip": False, "normalized": False}
    (model_copy / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (model_copy / "special_tokens_map.json").write_text(json.dumps({"pad_token": {"content": "<pad>"}, "eos_token": "ignored"}))
    facts = model_facts(model_copy)
    assert facts.chat_template is True
    assert (facts.eos_token, facts.pad_token) == ("</s>", "<pad>")  # tokenizer_config wins, the map fills gaps


def test_context_length_under_another_family_name(tmp_path):
    from transformers import GPT2Config

    facts = model_facts(save_config(tmp_path / "gpt2", GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, dtype="bfloat16")))
    assert facts.model_type == "gpt2" and facts.context_length == 64  # GPT-2 calls it n_positions
    assert facts.tie_word_embeddings is True and facts.dtype == "bfloat16"
    assert (facts.bos_token, facts.pad_token, facts.chat_template) == ("-", "-", False)  # no tokenizer files


def test_context_length_unknown_is_none(tmp_path):
    from transformers import BloomConfig

    facts = model_facts(save_config(tmp_path / "bloom", BloomConfig(n_layer=1, hidden_size=32, n_head=2)))
    assert facts.model_type == "bloom" and facts.context_length is None  # ALiBi: no trained length in the config
