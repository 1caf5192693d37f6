"""Target modules and 4-bit eligibility read off the model (assets/training/targets.py), on real
transformers architectures with their own module names."""

import pytest
import torch

from assets.models.targets import linear_layers, output_head_name, resolve_targets, unquantizable
from assets.settings.training import ALL_LINEAR, QLoraConfig


def skeleton(config):
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def llama(**overrides):
    from transformers import LlamaConfig

    return skeleton(LlamaConfig(**dict(vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2) | overrides))


def neox():
    from transformers import GPTNeoXConfig

    return skeleton(GPTNeoXConfig(vocab_size=320, hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4))


def phi3():
    from transformers import Phi3Config

    return skeleton(Phi3Config(vocab_size=320, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                               num_attention_heads=4, num_key_value_heads=4, pad_token_id=0, bos_token_id=1, eos_token_id=2))


def test_all_linear_on_llama_is_every_projection_and_not_the_head():
    plan = resolve_targets(llama(), [ALL_LINEAR])
    assert plan.targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert plan.counts == dict.fromkeys(plan.targets, 2) and plan.adapted_layers == 14
    assert plan.full_precision == []


def test_all_linear_on_gpt_neox_uses_its_names_and_skips_the_head():
    model = neox()
    plan = resolve_targets(model, [ALL_LINEAR])
    assert plan.targets == ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]
    assert output_head_name(model) not in plan.counts and plan.adapted_layers == 8


def test_all_linear_on_phi3_adapts_the_fused_projections():
    plan = resolve_targets(phi3(), [ALL_LINEAR])
    assert sorted(plan.targets) == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]
    assert plan.adapted_layers == 12


def test_explicit_names_and_suffixes_still_work():
    plan = resolve_targets(llama(), ["q_proj", "mlp.down_proj"])
    assert plan.targets == ["q_proj", "mlp.down_proj"] and plan.counts == {"q_proj": 2, "down_proj": 2}


def test_a_name_that_matches_nothing_lists_the_models_linear_layers():
    with pytest.raises(ValueError) as error:
        resolve_targets(neox(), ["q_proj", "v_proj"])
    assert str(error.value) == ("target_modules: 'q_proj' matches no linear layer of this model; its linear layers are: "
                                "query_key_value (2), dense (2), dense_h_to_4h (2), dense_4h_to_h (2), lm_head (1)")


def test_all_linear_stands_alone():
    with pytest.raises(ValueError, match="stands alone"):
        QLoraConfig(target_modules=[ALL_LINEAR, "q_proj"])
    assert QLoraConfig().target_modules == [ALL_LINEAR]


def test_layers_the_4bit_kernels_cannot_run_are_listed():
    model = llama(intermediate_size=200)
    # gate/up produce 200 outputs (not a multiple of 32), down_proj reads 200 inputs (not of 64).
    assert unquantizable(model) == [f"model.layers.{i}.mlp.{n}" for i in range(2) for n in ("gate_proj", "up_proj", "down_proj")]
    assert unquantizable(llama()) == []
    assert {layer.name for layer in linear_layers(model)} >= {"lm_head"}


def test_an_odd_mlp_width_loads_runs_and_trains_with_those_layers_kept_in_full_precision(tmp_path):
    import bitsandbytes as bnb
    from transformers import LlamaConfig, LlamaForCausalLM

    from assets.models.loading import load_quantized_base

    config = LlamaConfig(vocab_size=320, hidden_size=128, intermediate_size=200, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    model = load_quantized_base(tmp_path, torch.float32, "cpu")
    kinds = {name: type(m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert kinds["model.layers.0.mlp.down_proj"] is torch.nn.Linear and kinds["lm_head"] is torch.nn.Linear
    assert kinds["model.layers.0.self_attn.q_proj"] is bnb.nn.Linear4bit
    ids = torch.randint(0, 300, (2, 9))
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    model.eval()
    with torch.no_grad():  # the inference path where the 4-bit CPU kernel failed on such shapes
        assert torch.isfinite(model(input_ids=ids).logits).all()
