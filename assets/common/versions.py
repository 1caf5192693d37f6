"""Library versions that decide a result, recorded in metadata and model cards for reproducibility."""

from importlib import metadata

TRACKED = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "polars", "great-expectations", "dagster")


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata (no heavy import)."""
    versions = {}
    for name in TRACKED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
