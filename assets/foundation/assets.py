"""`base_model`: the frozen foundation model every adapter is trained on."""

import dagster as dg

from assets.foundation.model_facts import model_facts
from assets.foundation.resolve import resolve_base_model
from resources.base_model_source import BaseModelSource
from resources.lineage import as_recorded
from resources.storage import ArtifactStore


@dg.asset(group_name="foundation", kinds={"transformers", "safetensors"}, code_version="2")
def base_model(context: dg.AssetExecutionContext, base_model_source: BaseModelSource, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """The base model as a local Hugging Face directory holding only what loading needs (config,
    tokenizer, safetensors weights; a native transformers architecture, no remote code). A local
    directory is copied under the artifacts by content, so later edits to it cannot reach later
    steps. Its fingerprint (content hash, or hub commit) is its data version: a new base makes
    every adapter stale."""
    spec = base_model_source.parsed()
    resolved = resolve_base_model(spec, artifacts.asset_dir("base_model"), base_model_source.pickled_weights_allowed())
    facts = model_facts(resolved.path)
    weights = "safetensors, converted from pickled pytorch_model*.bin" if resolved.converted_from_pickle else "safetensors"
    context.log.info(
        f"base model {spec.display} at {resolved.path} (fingerprint {resolved.fingerprint[:16]}, "
        f"{facts.model_type}, {weights}, {resolved.bytes / 1e6:.1f} MB)"
    )
    return dg.MaterializeResult(
        metadata=as_recorded({  # on object storage: the bucket URL, which every machine can stage in
            "path": dg.MetadataValue.path(str(resolved.path)),
            "spec": spec.display,
            "source": spec.source,
            "revision": resolved.revision or "-",
            "fingerprint": resolved.fingerprint,
            **facts.as_metadata(),
            "weights": weights,
            "files": list(resolved.files),
            "bytes": resolved.bytes,
            "ignored_files": list(resolved.skipped),
        }),
        data_version=dg.DataVersion(resolved.fingerprint),
    )
