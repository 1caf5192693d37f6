"""`base_model`: the frozen foundation model every adapter is trained on."""

import json

import dagster as dg

from assets.foundation.resolve import resolve_base_model
from resources.base_model_source import BaseModelSource
from resources.storage import ArtifactStore


@dg.asset(group_name="foundation", kinds={"transformers", "safetensors"}, code_version="1")
def base_model(context: dg.AssetExecutionContext, base_model_source: BaseModelSource, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """The base model as a local Hugging Face directory. Its fingerprint (content hash, or hub
    commit) is its data version: a new base makes every adapter stale."""
    spec = base_model_source.parsed()
    resolved = resolve_base_model(spec, artifacts.asset_dir("base_model"))
    config = json.loads((resolved.path / "config.json").read_text())
    context.log.info(f"base model {spec.display} at {resolved.path} (fingerprint {resolved.fingerprint[:16]})")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(resolved.path)),
            "spec": spec.display,
            "source": spec.source,
            "revision": resolved.revision or "-",
            "fingerprint": resolved.fingerprint,
            "architecture": ",".join(config.get("architectures", [])),
            "hidden_size": int(config.get("hidden_size", 0)),
            "num_hidden_layers": int(config.get("num_hidden_layers", 0)),
            "vocab_size": int(config.get("vocab_size", 0)),
        },
        data_version=dg.DataVersion(resolved.fingerprint),
    )
