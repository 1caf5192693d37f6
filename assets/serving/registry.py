"""The adapter registry on disk: what a server (ours, or vLLM's filesystem resolver and
`--lora-modules`) reads, and the promotion rules that decide what goes in. No dagster here.

Layout (`<registry>` is the AdapterRegistry resource's root):

    <registry>/registry.json                      the served base (name, path, fingerprint), the domains
    <registry>/history.jsonl                      one line per decision: promoted, kept, refused, removed
    <registry>/<domain>  ->  .versions/<domain>/<version>    a relative symlink, swapped atomically
    <registry>/.versions/<domain>/<version>/adapter_config.json
                                              .../adapter_model.safetensors
                                              .../manifest.json

Why a symlink: a version folder is written whole under a hidden staging name, renamed into place
(atomic), and only then does `<registry>/<domain>` point at it, through `os.replace` of a fresh
symlink (rename(2) is atomic). A reader that resolves `<registry>/<domain>` once sees either the old
complete version or the new complete version, never a half-written folder. Version folders are
never modified after publishing; the newest `KEEP_VERSIONS` per domain are kept for roll-back.
"""

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assets.common.domains import validate_domain_key

VERSIONS = ".versions"
MANIFEST = "manifest.json"
REGISTRY_FILE = "registry.json"
HISTORY_FILE = "history.jsonl"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
KEEP_VERSIONS = 3

# Linear projections vLLM's LoRA layers accept, by the module names the families in its model
# registry use: Llama/Mistral/Qwen/Gemma/OLMo (q,k,v,o,gate,up,down_proj), Phi-3 (qkv_proj,
# gate_up_proj), GPT-NeoX/Falcon/Phi (query_key_value, dense, dense_h_to_4h, dense_4h_to_h, fc1,
# fc2), GPT-2/BigCode (c_attn, c_proj, c_fc), OPT/BART (out_proj), InternLM2 (wqkv, wo, w1, w2, w3).
# Embeddings and the output head (embed_tokens, lm_head) are refused: vLLM dropped LoRA on them.
# This is a name check, not a load into vLLM (vLLM is not installed here): a name on this list on a
# family whose vLLM implementation lacks it would still be refused by vLLM itself.
VLLM_TARGET_MODULES = frozenset({
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj", "gate_up_proj",
    "query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "fc1", "fc2", "c_attn", "c_proj", "c_fc",
    "out_proj", "wqkv", "wo", "w1", "w2", "w3",
})


@dataclass(frozen=True)
class Candidate:
    """A domain's current adapter, as the evaluation recorded it."""

    domain: str
    adapter_path: str
    adapter_version: str  # qlora_adapter's data version
    base_fingerprint: str  # the base_model data version it was trained on
    passed_gate: bool  # adapter_beats_base passed for exactly this adapter version
    eval_loss: float | None
    evaluation: dict[str, float | int] = field(default_factory=dict)  # every numeric eval number
    data_versions: dict[str, str] = field(default_factory=dict)
    run_id: str = "-"


@dataclass(frozen=True)
class Decision:
    domain: str
    action: str  # promoted | kept | unchanged | refused | absent
    reason: str
    version: str | None = None  # the registry version serving this domain after the decision


def vllm_problems(adapter_config: dict[str, Any], max_rank: int) -> list[str]:
    """Why vLLM would refuse this PEFT adapter config (empty: it would load it)."""
    problems = []
    if adapter_config.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type {adapter_config.get('peft_type')!r} is not LORA")
    rank = int(adapter_config.get("r", 0))
    if rank > max_rank:
        problems.append(f"rank {rank} is above max_lora_rank {max_rank}")
    if adapter_config.get("modules_to_save"):
        problems.append(f"modules_to_save {adapter_config['modules_to_save']} (full modules cannot be swapped per request)")
    if adapter_config.get("use_dora"):
        problems.append("use_dora is true (DoRA is not served)")
    if adapter_config.get("rank_pattern") or adapter_config.get("alpha_pattern"):
        problems.append("rank_pattern/alpha_pattern set (one rank per adapter is served)")
    targets = adapter_config.get("target_modules") or []
    if isinstance(targets, str):
        problems.append(f"target_modules is a regular expression {targets!r}, not a list of module names")
    else:
        unknown = sorted(set(targets) - VLLM_TARGET_MODULES)
        if unknown:
            problems.append(f"target_modules {unknown} are not linear projections vLLM serves LoRA on")
    return problems


def decide(candidate: Candidate, promoted: dict[str, Any] | None, base_fingerprint: str, config_problems: list[str]) -> Decision:
    """Promote, keep or refuse one domain's current adapter. `promoted`: the manifest serving now."""
    current = promoted["adapter_version"] if promoted else None
    if not candidate.passed_gate:
        return Decision(candidate.domain, "kept" if promoted else "absent",
                        "the current adapter did not pass adapter_beats_base (or was not evaluated)", current)
    if promoted and promoted["adapter_version"] == candidate.adapter_version and promoted["base_fingerprint"] == base_fingerprint:
        return Decision(candidate.domain, "unchanged", "already serving this adapter", current)
    if candidate.base_fingerprint != base_fingerprint:
        return Decision(candidate.domain, "refused" if not promoted else "kept",
                        f"trained on base {candidate.base_fingerprint[:16]}, the registry serves {base_fingerprint[:16]}", current)
    if config_problems:
        return Decision(candidate.domain, "refused", "not vLLM-compatible: " + "; ".join(config_problems), current)
    if promoted and promoted["base_fingerprint"] == base_fingerprint and _worse(candidate.eval_loss, promoted.get("eval_loss")):
        return Decision(candidate.domain, "kept",
                        f"candidate eval loss {candidate.eval_loss:.4f} is worse than the promoted {promoted['eval_loss']:.4f}", current)
    was = f" (replaces {promoted['adapter_version'][:16]}, eval loss {promoted.get('eval_loss')})" if promoted else ""
    return Decision(candidate.domain, "promoted", f"passed adapter_beats_base, eval loss {candidate.eval_loss}{was}", candidate.adapter_version)


def _worse(candidate: float | None, promoted: float | None) -> bool:
    return candidate is None or (promoted is not None and candidate > promoted)


def manifest(candidate: Candidate, base: dict[str, str], version_id: str) -> dict[str, Any]:
    return {
        "domain": candidate.domain,
        "version": version_id,
        "adapter_version": candidate.adapter_version,
        "adapter_source": candidate.adapter_path,
        "base_model_name_or_path": base["name"],
        "base_fingerprint": candidate.base_fingerprint,
        "eval_loss": candidate.eval_loss,
        "evaluation": candidate.evaluation,
        "data_versions": candidate.data_versions,
        "run_id": candidate.run_id,
        "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def publish(registry: Path, candidate: Candidate, base: dict[str, str]) -> dict[str, Any]:
    """Copy the adapter into a new version folder and point `<registry>/<domain>` at it atomically."""
    domain = validate_domain_key(candidate.domain)
    now = time.time()  # sortable by name, unique even for one adapter promoted twice in a millisecond
    version_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now * 1000) % 1000:03d}Z-{candidate.adapter_version[:12]}-{uuid.uuid4().hex[:6]}"
    versions = registry / VERSIONS / domain
    versions.mkdir(parents=True, exist_ok=True)
    final = versions / version_id
    staging = versions / f".{version_id}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        source = Path(candidate.adapter_path)
        for name in ADAPTER_FILES:
            if not (source / name).is_file():
                raise FileNotFoundError(f"domain {domain!r}: adapter {source} has no {name}")
        config = json.loads((source / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = base["name"]  # what vLLM's --model names, not the training path
        (staging / "adapter_config.json").write_text(json.dumps(config, indent=2))
        shutil.copy2(source / "adapter_model.safetensors", staging / "adapter_model.safetensors")
        entry = manifest(candidate, base, version_id)
        (staging / MANIFEST).write_text(json.dumps(entry, indent=2))
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    point(registry, domain, final)
    _prune(versions, keep=final)
    return entry


def point(registry: Path, domain: str, target: Path) -> None:
    """Swap `<registry>/<domain>` to `target` in one rename: readers see the old or the new version."""
    link = registry / domain
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} is a real folder, not a registry link; move it away")
    temporary = registry / f".{domain}.link-{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(target, registry), temporary)
    os.replace(temporary, link)


def _prune(versions: Path, keep: Path) -> None:
    published = sorted((p for p in versions.iterdir() if not p.name.startswith(".")), key=lambda p: p.name, reverse=True)
    for old in published[KEEP_VERSIONS:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def served(registry: Path) -> dict[str, Path]:
    """Domain -> the version folder its link points at now (resolved once: a consistent snapshot)."""
    if not registry.is_dir():
        return {}
    found = {}
    for link in sorted(registry.iterdir()):
        if link.is_symlink() and not link.name.startswith("."):
            target = link.resolve()
            if (target / MANIFEST).is_file():
                found[link.name] = target
    return found


def read_manifest(version: Path) -> dict[str, Any]:
    return json.loads((version / MANIFEST).read_text())


def record_history(registry: Path, decision: Decision, run_id: str) -> None:
    registry.mkdir(parents=True, exist_ok=True)
    line = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "run_id": run_id, **asdict(decision)}
    with open(registry / HISTORY_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def write_registry_file(registry: Path, base: dict[str, str], domains: dict[str, dict[str, Any]]) -> None:
    """registry.json, replaced atomically: the served base and each domain's manifest."""
    registry.mkdir(parents=True, exist_ok=True)
    temporary = registry / f".{REGISTRY_FILE}.{uuid.uuid4().hex[:8]}"
    temporary.write_text(json.dumps({"base": base, "domains": domains}, indent=2))
    os.replace(temporary, registry / REGISTRY_FILE)


def read_registry_file(registry: Path) -> dict[str, Any]:
    path = registry / REGISTRY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: materialize adapter_registry first (or pass --registry)")
    return json.loads(path.read_text())


def remove(registry: Path, domain: str) -> None:
    """Stop serving a domain (its version folders stay for roll-back)."""
    link = registry / validate_domain_key(domain)
    if link.is_symlink():
        link.unlink()
