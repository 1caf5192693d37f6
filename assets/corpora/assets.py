"""`raw_corpus`: a domain's landed files as one table with provenance, bad rows quarantined."""

from pathlib import Path

import dagster as dg
import polars as pl

from assets.common.atomic import atomic_directory
from assets.common.hashing import files_fingerprint, json_fingerprint
from assets.corpora.landing_scan import landing_fingerprint
from assets.corpora.listing import list_domain_files
from assets.corpora.writing import WrittenDomain, write_domain
from assets.partitions import domain_partitions
from resources.landing import LandingZone
from resources.lineage import published, reuse_if_unchanged
from resources.storage import ArtifactStore

CODE_VERSION = "2"


@dg.asset(partitions_def=domain_partitions, group_name="corpora", kinds={"polars", "parquet"}, code_version=CODE_VERSION)
def raw_corpus(context: dg.AssetExecutionContext, landing: LandingZone, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """Every file under `<landing>/<domain>/` read into one table (source file, line, kind, turns).
    Rows that cannot be used go to `quarantine.parquet` with their reason; rows_in = kept + quarantined.
    The data version is a hash of the landed files, so new data marks the domain's chain stale."""
    domain = context.partition_key
    folder = landing.domain_dir(domain)
    landing.domain_settings(domain)  # a broken domain.yaml stops the domain here, before any work
    files = {p.relative_to(folder).as_posix(): p for p in list_domain_files(folder)} if folder.is_dir() else {}
    version = json_fingerprint({"code": CODE_VERSION, "files": files_fingerprint(files)})
    if reused := reuse_if_unchanged(context, version):
        return reused
    location = artifacts.new_location(context, "raw_corpus")
    try:
        with atomic_directory(location) as staging:
            written = write_domain(folder, staging / "rows.parquet")  # streamed: one batch in memory
            written.read.quarantine.write_parquet(staging / "quarantine.parquet")
    except (FileNotFoundError, ValueError) as error:
        raise dg.Failure(f"domain {domain!r}: {error}") from error
    result, metadata = written.read, _metadata(location, folder, written)
    if not result.rows_kept:
        raise dg.Failure(
            f"domain {domain!r}: nothing usable in {folder}: all {result.rows_in} rows were quarantined "
            f"(reasons in {location / 'quarantine.parquet'})",
            metadata=metadata,
        )
    if result.quarantine.height:
        context.log.warning(f"domain {domain!r}: {result.quarantine.height} of {result.rows_in} rows quarantined")
    return published(metadata, version)


def _metadata(location: Path, folder: Path, written: WrittenDomain) -> dict:
    result = written.read
    return {
        "path": dg.MetadataValue.path(str(location)),
        "landing_folder": dg.MetadataValue.path(str(folder)),
        "landing_fingerprint": landing_fingerprint(folder),
        "files": len(result.files),
        "rows_in": result.rows_in,
        "rows_kept": result.rows_kept,
        "rows_quarantined": result.quarantine.height,
        "empty_files": dg.MetadataValue.json(result.empty_files),
        "kinds": dg.MetadataValue.json(written.kinds),
        "quarantine_preview": dg.MetadataValue.md(_quarantine_table(result.quarantine)),
    }


def _quarantine_table(quarantine: pl.DataFrame, limit: int = 20) -> str:
    if quarantine.is_empty():
        return "No row quarantined."
    lines = ["| file | line | reason |", "|---|---|---|"]
    for row in quarantine.head(limit).iter_rows(named=True):
        reason = row["reason"].replace("|", "\\|")
        lines.append(f"| {row['source_file']} | {row['line']} | {reason} |")
    if quarantine.height > limit:
        lines.append(f"\n… and {quarantine.height - limit} more in quarantine.parquet")
    return "\n".join(lines)
