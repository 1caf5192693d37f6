"""The merged model's README.md: a Hugging Face model card that carries the full lineage."""

import json
import time
from pathlib import Path
from typing import Any

from assets.common.versions import library_versions

EVALUATION_KEYS = ("eval_loss_base", "eval_loss_adapter", "perplexity_base", "perplexity_adapter")


def model_lineage(domain: str, recorded: dict[str, Any], merge_dtype: str, merge: Any, run_id: str) -> dict[str, Any]:
    """The lineage of a merged model from what its upstream materializations recorded.

    `recorded`: the metadata values of base_model, qlora_adapter, adapter_evaluation and
    training_dataset, and `data_versions` (raw_corpus, training_dataset); `merge` a MergeReport.
    """
    adapter = recorded["qlora_adapter"]
    return {
        "domain": domain,
        "base_model": {key: recorded["base_model"][key] for key in ("spec", "revision", "fingerprint")},
        "data_versions": recorded["data_versions"],
        "adapter_path": adapter["path"],
        "training": adapter["config"],
        "training_resolved": adapter.get("resolved", {}),  # absent from adapters trained before it was recorded
        "chat_template": recorded["training_dataset"].get("template", {}),
        "evaluation": {key: recorded["adapter_evaluation"][key] for key in EVALUATION_KEYS},
        "merge": {"dtype": merge_dtype, "max_abs_logit_diff": merge.max_abs_logit_diff, "eval_loss_merged": merge.eval_loss_merged},
        "dagster_run_id": run_id,
        "library_versions": library_versions(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_model_card(directory: Path, lineage: dict[str, Any]) -> None:
    """`lineage.json` and the model card `README.md` beside the merged weights."""
    (directory / "lineage.json").write_text(json.dumps(lineage, indent=2, sort_keys=True, default=str))
    (directory / "README.md").write_text(render_model_card(lineage))


def render_model_card(lineage: dict[str, Any]) -> str:
    """Markdown with YAML front matter (values JSON-quoted: JSON strings are valid YAML); `lineage` is the dict also stored as `lineage.json`.

    Expected keys: domain, base_model {spec, revision, fingerprint}, data_versions {raw_corpus,
    training_dataset}, training (config dict), evaluation {eval_loss_base, eval_loss_adapter,
    perplexity_base, perplexity_adapter}, merge {dtype, max_abs_logit_diff, eval_loss_merged},
    optional training_resolved (compute dtype, target modules, ...) and chat_template (how it was used),
    dagster_run_id, library_versions, created_at.
    """
    base = lineage["base_model"]
    evaluation = lineage["evaluation"]
    merge = lineage["merge"]
    rows = _table_rows(lineage["training"])
    resolved = _table_rows({**lineage.get("training_resolved", {}), **lineage.get("chat_template", {})})
    versions = ", ".join(f"{name} {version}" for name, version in lineage["library_versions"].items())
    return f"""---
library_name: transformers
base_model: {json.dumps(base["spec"])}
tags: [loraline, qlora, peft, {json.dumps("domain-" + lineage["domain"])}]
---

# {lineage["domain"]}: {base["spec"]} + QLoRA adapter, merged

Built by loraline (Dagster run `{lineage["dagster_run_id"]}`, {lineage["created_at"]}). The
adapter was trained on a 4-bit NF4 copy of the base and merged into the full-precision base
({merge["dtype"]}).

## Evaluation (held-out split of `{lineage["domain"]}`, loss in nats per supervised token)

| model | eval loss | perplexity |
|---|---|---|
| base (4-bit) | {evaluation["eval_loss_base"]:.4f} | {evaluation["perplexity_base"]:.2f} |
| base + adapter (4-bit) | {evaluation["eval_loss_adapter"]:.4f} | {evaluation["perplexity_adapter"]:.2f} |
| this merged model | {merge["eval_loss_merged"]:.4f} | |

Merge parity: largest |logit difference| against the adapter on the same base: {merge["max_abs_logit_diff"]:.2e}.

## Lineage

| what | version |
|---|---|
| base model | `{base["spec"]}` revision `{base.get("revision") or "-"}` |
| base model fingerprint | `{base["fingerprint"]}` |
| raw corpus data version | `{lineage["data_versions"]["raw_corpus"]}` |
| training dataset data version | `{lineage["data_versions"]["training_dataset"]}` |

## Training configuration

| setting | value |
|---|---|
{rows}

What ran (settings resolved on this model and machine, and how its chat template was used):

| what | value |
|---|---|
{resolved}

Libraries: {versions}.

<details><summary>lineage.json</summary>

```json
{json.dumps(lineage, indent=2, sort_keys=True, default=str)}
```
</details>
"""


def _table_rows(values: dict[str, Any]) -> str:
    # A "|" inside a cell ends it, even in backticks (`<|eot_id|>`): escape it.
    return "\n".join(f"| {key} | `{str(value).replace('|', chr(92) + '|')}` |" for key, value in values.items())
