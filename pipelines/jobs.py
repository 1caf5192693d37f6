"""Jobs: the per-domain fine-tuning chain."""

import dagster as dg

from assets.partitions import domain_partitions

PER_DOMAIN_ASSETS = ("raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset", "qlora_adapter", "adapter_evaluation", "merged_model",
                     "gguf_export")

domain_finetune_job = dg.define_asset_job(
    name="domain_finetune_job",
    selection=dg.AssetSelection.assets(*PER_DOMAIN_ASSETS),
    partitions_def=domain_partitions,
    description="Landing folder to merged model for one domain: ingest, clean, validate, tokenize, "
    "train a QLoRA adapter, evaluate it against the base, merge it, export it as GGUF. Needs base_model materialized.",
)

registry_job = dg.define_asset_job(
    name="registry_job",
    selection=dg.AssetSelection.assets("adapter_registry"),
    description="Promote every domain's gated adapter into the serving registry (what `loraline serve` loads).",
)

base_model_job = dg.define_asset_job(
    name="base_model_job",
    selection=dg.AssetSelection.assets("base_model"),
    description="Resolve and fingerprint the base model (LORALINE_BASE_MODEL).",
)
