"""The merged model's README.md: a Hugging Face model card that carries the full lineage."""

import json
from typing import Any


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
