"""`raw_corpus`: a domain's landed files as one table with provenance, bad rows quarantined."""

from pathlib import Path

import dagster as dg
import polars as pl

from assets.common.atomic import atomic_directory
from assets.common.hashing import digests_fingerprint, file_sha256, json_fingerprint
from assets.corpora.counting import Tally, tally
from assets.corpora.hashed_file import landed_digests
from assets.corpora.landing_scan import KEY_CHARS
from assets.corpora.listing import list_domain_files
from assets.corpora.tables import UNREADABLE
from assets.corpora.writing import QUARANTINE_FILE, WrittenDomain, write_domain
from assets.partitions import domain_partitions
from assets.settings.cleaning import CleaningConfig
from assets.settings.domain_file import settings_files
from resources.landing import LandingZone
from resources.lineage import published, reuse_if_unchanged
from resources.storage import ArtifactStore

CODE_VERSION = "3"


@dg.asset(partitions_def=domain_partitions, group_name="corpora", kinds={"polars", "parquet"}, code_version=CODE_VERSION)
def raw_corpus(context: dg.AssetExecutionContext, landing: LandingZone, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """Every file under `<landing>/<domain>/` read into one table (source file, line, kind, turns).
    Rows that cannot be used go to `quarantine.parquet` with their reason; rows_in = kept + quarantined,
    and `records_counted` counts the files' records again without the readers. The data version is
    a hash of the bytes read (each file hashed as it is parsed), so new data marks the chain stale."""
    domain = context.partition_key
    folder = landing.domain_dir(domain)
    scrub = landing.effective_settings(domain, "cleaning", CleaningConfig()).scrub_pii  # also stops a broken domain.yaml
    files = {p.relative_to(folder).as_posix(): p for p in list_domain_files(folder)} if folder.is_dir() else {}
    looked = landed_digests(files, UNREADABLE)  # a cheap look first: unchanged bytes are not read again
    if reused := reuse_if_unchanged(context, _version(looked, scrub)):
        return reused
    location = artifacts.new_location(context, "raw_corpus")
    try:
        with atomic_directory(location) as staging:
            written = write_domain(folder, staging, scrub_pii=scrub)  # streamed: one batch in memory
    except (FileNotFoundError, ValueError) as error:
        raise dg.Failure(f"domain {domain!r}: {error}") from error
    read = written.read
    if changed := sorted(name for name in {*looked, *read.digests} if looked.get(name) != read.digests.get(name)):
        context.log.warning(f"domain {domain!r}: the landing changed during the read ({', '.join(changed[:5])}); "
                            "the data version describes the bytes read")
    metadata = _metadata(location, folder, written, tally(folder, read.file_reads, len(read.refused)), changed)
    if not read.rows_kept:
        raise dg.Failure(f"domain {domain!r}: nothing usable in {folder}: all {read.rows_in} rows were quarantined "
                         f"(reasons in {location / QUARANTINE_FILE})", metadata=metadata)
    if read.rows_quarantined:
        context.log.warning(f"domain {domain!r}: {read.rows_quarantined} of {read.rows_in} rows quarantined")
    return published(metadata, _version(read.digests, scrub))


def _version(digests: dict[str, str], scrub_pii: bool) -> str:
    # scrub_pii changes what quarantine.parquet holds, so it is part of what was made.
    return json_fingerprint({"code": CODE_VERSION, "files": digests_fingerprint(digests), "scrub_pii": scrub_pii})


def _landing_fingerprint(folder: Path, digests: dict[str, str]) -> str:
    """landing_scan.landing_fingerprint (the sensor's content key), from the digests of the bytes
    read plus the settings file, so the sensor and raw_corpus name the same landing alike."""
    settings = {path.name: file_sha256(path) for path in settings_files(folder)}
    return digests_fingerprint({**digests, **settings})[:KEY_CHARS]


def _metadata(location: Path, folder: Path, written: WrittenDomain, counts: Tally, changed: list[str]) -> dict:
    result = written.read
    return {
        "path": dg.MetadataValue.path(str(location)),
        "landing_folder": dg.MetadataValue.path(str(folder)),
        "landing_fingerprint": _landing_fingerprint(folder, result.digests),
        "files": len(result.files),
        "rows_in": result.rows_in,
        "rows_kept": result.rows_kept,
        "rows_quarantined": result.rows_quarantined,
        "records_counted": counts.counted,
        "records_not_counted": dg.MetadataValue.json(counts.not_counted),
        "count_mismatches": dg.MetadataValue.json(counts.mismatches),
        "skipped_files": dg.MetadataValue.json(dict(sorted([*result.skipped, *result.refused]))),
        "changed_during_read": dg.MetadataValue.json(changed),
        "empty_files": dg.MetadataValue.json(result.empty_files),
        "kinds": dg.MetadataValue.json(written.kinds),
        "quarantine_preview": dg.MetadataValue.md(_quarantine_table(written.preview, result.rows_quarantined)),
    }


def _quarantine_table(preview: pl.DataFrame, total: int) -> str:
    if not total:
        return "No row quarantined."
    lines = ["| file | line | reason |", "|---|---|---|"]
    for row in preview.iter_rows(named=True):
        reason = row["reason"].replace("|", "\\|")
        lines.append(f"| {row['source_file']} | {row['line']} | {reason} |")
    if total > preview.height:
        lines.append(f"\n… and {total - preview.height} more in {QUARANTINE_FILE}")
    return "\n".join(lines)
