"""What changed in the landing zone since the last look: the decisions behind the landing sensor.

Producers' convention: write a file under a temporary name (starting with "." or ending in
.tmp/.part/.partial/~) and rename it when complete, or write it in place and leave it alone; a
file modified less than `settle_seconds` ago holds its whole domain back until it settles.

A domain is identified by a content fingerprint of its data files and its domain.yaml. A cheap
signature (names, sizes, modification times) is kept beside it, so an idle tick hashes nothing.
"""

from dataclasses import dataclass, field
from pathlib import Path

from assets.common.hashing import files_fingerprint, json_fingerprint
from assets.corpora.listing import list_domain_files
from assets.settings.domain_file import SETTINGS_NAMES, settings_files

KEY_CHARS = 20  # 80 bits of each hash keep the cursor compact and collisions out of reach


@dataclass(frozen=True)
class DomainScan:
    domain: str
    signature: str  # hash of (name, size, mtime) of every file
    fingerprint: str | None  # content hash; None when nothing is landed or something is unsettled
    unsettled: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LandingPlan:
    new_domains: list[str]  # to register as partitions
    runs: dict[str, str]  # domain -> run key (derived from its content)
    cursor: dict[str, list[str]]  # domain -> [signature, fingerprint]
    notes: list[str]  # lines for the sensor's log


def landing_files(folder: Path) -> dict[str, Path]:
    """The files that decide a domain's result: its data files and its domain.yaml / domain.yml."""
    files = {p.relative_to(folder).as_posix(): p for p in list_domain_files(folder)}
    files.update({path.name: path for path in settings_files(folder)})
    return files


def landing_fingerprint(folder: Path) -> str:
    """The content key the sensor derives run keys from; raw_corpus records it as metadata."""
    return files_fingerprint(landing_files(folder))[:KEY_CHARS]


def scan_domain(domain: str, folder: Path, settle_seconds: float, now: float, previous: list[str] | None) -> DomainScan:
    files = landing_files(folder)
    stats = {}
    for name, path in files.items():
        stat = path.stat()
        stats[name] = (stat.st_size, stat.st_mtime_ns)
    signature = json_fingerprint(stats)[:KEY_CHARS]
    unsettled = sorted(name for name, (_, mtime) in stats.items() if now - mtime / 1e9 < settle_seconds)
    data_files = [name for name in files if name not in SETTINGS_NAMES]
    if unsettled or not data_files:
        return DomainScan(domain, signature, None, unsettled)
    if previous and previous[0] == signature:
        return DomainScan(domain, signature, previous[1])  # nothing touched: no need to hash
    return DomainScan(domain, signature, landing_fingerprint(folder))


def plan_landing(
    scans: list[DomainScan], invalid: list[str], cursor: dict[str, list[str]], registered: set[str], ingested: dict[str, str]
) -> LandingPlan:
    """Which domains to register and run: new folders, and folders whose content changed.

    `ingested` maps a registered domain to the landing fingerprint its latest raw_corpus read; it
    settles a first look (empty cursor, e.g. a sensor just turned on) without rerunning anything.
    """
    notes = [f"skipping folder {name!r}: not a valid domain key (lowercase letters, digits, '_', '-')" for name in invalid]
    new_domains, runs, next_cursor = [], {}, {}
    for scan in scans:
        previous = cursor.get(scan.domain)
        if scan.fingerprint is None:
            if scan.unsettled:
                notes.append(f"{scan.domain}: waiting for {len(scan.unsettled)} file(s) to settle: {', '.join(scan.unsettled[:5])}")
            if previous:
                next_cursor[scan.domain] = previous  # keep the last settled state
            continue
        next_cursor[scan.domain] = [scan.signature, scan.fingerprint]
        if scan.domain not in registered:
            new_domains.append(scan.domain)
            notes.append(f"{scan.domain}: new domain, registering and running it")
        elif (previous[1] if previous else ingested.get(scan.domain)) == scan.fingerprint:
            continue
        else:
            notes.append(f"{scan.domain}: landed data changed, retraining this domain")
        runs[scan.domain] = f"{scan.domain}:{scan.fingerprint}"
    for gone in sorted(set(cursor) - {scan.domain for scan in scans}):
        notes.append(f"{gone}: landing folder is gone; its partition and artifacts are kept")
    return LandingPlan(new_domains, runs, next_cursor, notes)
