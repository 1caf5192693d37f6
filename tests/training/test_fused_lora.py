"""The fused LoRA forward (assets/training/fused_lora.py) computes what peft's forward computes, with
the same gradients, in float32 and under bf16 autocast; anything but the plain training case goes
through peft's own forward."""

import pytest
import torch

from assets.settings.training import QLoraConfig
from assets.training.fused_lora import install_fused_lora
from assets.training.recipe import build_model


@pytest.fixture(scope="module")
def models(tiny_base):
    config = QLoraConfig(lora_dropout=0.0, compute_dtype="float32")
    pair = [build_model(tiny_base, config, "cpu")[0] for _ in range(2)]
    for model in pair:  # a non-zero B, so the update is not zero (peft initialises B to zeros)
        torch.manual_seed(7)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.data.normal_(0, 0.02)
    assert install_fused_lora(pair[1]) > 0
    assert install_fused_lora(pair[1]) == 0  # installed once
    return pair


def _loss_and_grads(model, ids, autocast_dtype=None):
    model.zero_grad(set_to_none=True)
    context = torch.autocast("cpu", dtype=autocast_dtype) if autocast_dtype else torch.autocast("cpu", enabled=False)
    with context:
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("autocast_dtype,tolerance", [(None, 1e-5), (torch.bfloat16, 3e-2)])
def test_fused_forward_matches_pefts_loss_and_gradients(models, autocast_dtype, tolerance):
    peft_model, fused_model = models
    ids = torch.randint(3, 250, (2, 48), generator=torch.Generator().manual_seed(0))
    loss_a, grads_a = _loss_and_grads(peft_model, ids, autocast_dtype)
    loss_b, grads_b = _loss_and_grads(fused_model, ids, autocast_dtype)
    torch.testing.assert_close(loss_b, loss_a, rtol=tolerance, atol=tolerance)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        scale = grads_a[name].abs().max().item() + 1e-12
        assert (grads_b[name] - grads_a[name]).abs().max().item() <= tolerance * scale, name


def test_adapters_disabled_fall_back_to_the_base_alone(models):
    peft_model, fused_model = models
    ids = torch.randint(3, 250, (1, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), fused_model.disable_adapter():
        base = fused_model(input_ids=ids).logits
    with torch.no_grad():
        adapted = fused_model(input_ids=ids).logits
        reference = peft_model(input_ids=ids).logits
    assert not torch.allclose(base, adapted)  # the adapters do something, and disabling them removes it
    torch.testing.assert_close(adapted, reference, rtol=1e-5, atol=1e-5)
