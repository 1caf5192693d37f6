"""A registry built in-process for tests and the benchmark: the built-in tiny base and LoRA adapters
with random (non-identity) weights, published through the registry's own code."""

from pathlib import Path

from assets.common.hashing import directory_fingerprint
from assets.serving.registry import Candidate, publish, read_manifest, served, write_registry_file

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_base(folder: Path, **shape: int) -> dict[str, str]:
    """The built-in tiny Llama (its default shape, or TinyLlamaSpec fields in `shape`)."""
    from assets.foundation.tiny_llama import TinyLlamaSpec, save_tiny_llama

    path = save_tiny_llama(folder, TinyLlamaSpec(**shape))
    return {"name": str(path), "path": str(path), "fingerprint": directory_fingerprint(path), "spec": "builtin:tiny-llama"}


def random_adapter(base: dict[str, str], folder: Path, seed: int, rank: int = 8) -> Path:
    """A LoRA adapter whose B matrices are not zero, so it changes what the base generates."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base["path"]),
                           LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS, init_lora_weights=False))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    model.save_pretrained(folder)
    return folder


def candidate(domain: str, adapter: Path, base: dict[str, str], version: str, eval_loss: float = 4.0, passed: bool = True) -> Candidate:
    return Candidate(domain=domain, adapter_path=str(adapter), adapter_version=version, base_fingerprint=base["fingerprint"],
                     passed_gate=passed, eval_loss=eval_loss, evaluation={"eval_loss_adapter": eval_loss})


def build(root: Path, domains: list[str], **shape: int) -> tuple[Path, dict[str, str], dict[str, Path]]:
    """(registry folder, base, domain -> source adapter folder) with every domain published."""
    base = tiny_base(root / "base", **shape)
    registry, adapters = root / "registry", {}
    for seed, domain in enumerate(domains, start=1):
        adapters[domain] = random_adapter(base, root / "adapters" / domain, seed)
        publish(registry, candidate(domain, adapters[domain], base, f"v{seed:032d}"), base)
    write_registry_file(registry, base, {d: read_manifest(v) for d, v in served(registry).items()})
    return registry, base, adapters
