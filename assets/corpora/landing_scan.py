"""What changed in the landing zone since the last look: the decisions behind the landing sensor.

Producers' convention: write a file under a temporary name (starting with "." or ending in
.tmp/.part/.partial/~) and rename it when complete, or write it in place and leave it alone; a
file modified less than `settle_seconds` ago holds its whole domain back until it settles.

A domain is identified by a content fingerprint of its data files and its domain.yaml, from
per-file digests cached by file version and hashed within a byte budget per tick
(landing_digests.py), so an idle tick hashes nothing and a big domain is hashed over several ticks.

Runs: the run key is `<domain>:<fingerprint>:<attempt>`. Dagster never launches a run key twice,
failed runs included, so the attempt number is what lets the same data run again. Whether it
should is read from the instance's runs (RunHistory), never from the cursor alone:
- a run of the domain queued or in flight (for any data): launch nothing, look again next tick;
- the sensor's latest run on this data succeeded: done;
- it failed or was canceled: retry with the next attempt, at most `max_retries` times in a row;
  then give up loudly until the data changes (or a run launched by hand succeeds);
- no run on this data since runs on other data (new data, or a revert A -> B -> A): run it,
  unless it is what raw_corpus ingested last (a first look at a domain already trained).
The cursor only remembers per domain [fingerprint, state] so a finished domain costs no query.

Pure module (stdlib, never dagster).
"""

from dataclasses import dataclass, field
from pathlib import Path

from assets.common.domains import UnsafeDomainFolder
from assets.common.hashing import files_fingerprint
from assets.corpora.landing_digests import DigestCache, FileKey, HashBudget, ScanError, domain_digests, file_key, fingerprint_of
from assets.corpora.listing import list_domain_files, os_error, scan_domain_files
from assets.settings.domain_file import SETTINGS_NAMES, settings_files

KEY_CHARS = 20  # 80 bits of each hash keep run keys and the cursor compact, collisions out of reach
DONE, PENDING, GAVE_UP = "done", "pending", "gave_up"  # a domain's state in the cursor


@dataclass(frozen=True)
class DomainScan:
    domain: str
    fingerprint: str | None  # content hash; None when not known this tick (see the other fields)
    unsettled: list[str] = field(default_factory=list)
    error: str | None = None  # why the domain could not be scanned this tick
    progress: tuple[int, int] | None = None  # (bytes hashed, bytes to hash) while hashing goes on


@dataclass(frozen=True)
class RunHistory:
    """What the instance knows about a domain's runs, for one fingerprint."""
    in_flight: list[str]  # ids of the domain's runs queued or running (any data, any trigger)
    streak: list[bool]  # outcomes (True: success), newest first, of the sensor's runs on this data
    #                     since its latest run on other data
    last_attempt: int | None  # highest attempt number on this data (a run key must never repeat)
    ingested: str | None  # landing fingerprint of the latest raw_corpus materialization


@dataclass(frozen=True)
class LandingPlan:
    new_domains: list[str]  # to register as partitions
    runs: dict[str, tuple[str, int]]  # domain -> (fingerprint, attempt) to launch
    cursor: dict[str, list[str]]  # domain -> [fingerprint, state]
    notes: list[str]  # lines for the sensor's log
    warnings: list[str] = field(default_factory=list)  # lines that need a person


def run_key(domain: str, fingerprint: str, attempt: int) -> str:
    return f"{domain}:{fingerprint}:{attempt}"


def landing_files(folder: Path) -> dict[str, Path]:
    """The files that decide a domain's result: its data files and its domain.yaml / domain.yml."""
    files = {p.relative_to(folder).as_posix(): p for p in list_domain_files(folder)}
    files.update({path.name: path for path in settings_files(folder)})
    return files


def landing_fingerprint(folder: Path) -> str:
    """The content key the sensor derives run keys from; raw_corpus records it as metadata."""
    return files_fingerprint(landing_files(folder))[:KEY_CHARS]


def stat_landing_files(folder: Path) -> dict[str, tuple[Path, FileKey]]:
    """landing_files with each file's version key; raises ScanError naming what cannot be read.

    A sub-folder that cannot be listed holds the whole domain back (a run would read part of it).
    """
    listing = scan_domain_files(folder)
    unlistable = [f"{name}: {reason}" for name, reason in listing.refused if reason.startswith("cannot list folder")]
    if unlistable:
        raise ScanError(f"{'; '.join(unlistable[:3])}; held back until every folder can be listed")
    files = {p.relative_to(folder).as_posix(): p for p in listing.paths}
    files.update({path.name: path for path in settings_files(folder)})
    stats = {}
    for name, path in files.items():
        try:
            stats[name] = (path, file_key(path))
        except OSError as error:  # deleted between listing and stat, or unreadable
            raise ScanError(f"file {name}: {os_error(error)}; looking again next tick") from None
    return stats


def scan_landing(folders: dict[str, Path], settle_seconds: float, now: float, cache: DigestCache,
                 budget: HashBudget) -> list[DomainScan]:
    """Scan every domain folder; one that fails is reported in its DomainScan, the others go on.

    Hashing goes to the domains with the least to hash first, so a one-file change is not held
    behind a first look at a 50 GB domain, and the big one gets what is left of the budget.
    """
    scans: dict[str, DomainScan] = {}
    work = []
    for domain, folder in folders.items():
        try:
            files = stat_landing_files(folder)
        except (ScanError, UnsafeDomainFolder, OSError) as error:
            scans[domain] = DomainScan(domain, None, error=str(error))
            continue
        unsettled = sorted(name for name, (_, key) in files.items() if now - key[1] / 1e9 < settle_seconds)
        if unsettled or not any(name not in SETTINGS_NAMES for name in files):
            scans[domain] = DomainScan(domain, None, unsettled)
            continue
        entries = cache.load(domain)
        to_hash = sum(key[0] for name, (_, key) in files.items() if tuple(entries.get(name, [])[:4]) != key)
        work.append((to_hash, domain, folder, files, entries))
    for _, domain, folder, files, entries in sorted(work, key=lambda item: (item[0], item[1])):
        before = {name: list(entry) for name, entry in entries.items()}
        try:
            digests = domain_digests(folder, files, entries, budget)
        except (ScanError, OSError) as error:
            scans[domain] = DomainScan(domain, None, error=str(error))
            digests = None
        if entries != before:
            cache.save(domain, entries)  # files finished stay hashed, even when the domain is not
        if digests is None:
            continue
        if digests.complete:
            scans[domain] = DomainScan(domain, fingerprint_of(digests.done, KEY_CHARS))
        else:
            scans[domain] = DomainScan(domain, None, progress=(digests.hashed, digests.to_hash))
    return [scans[domain] for domain in folders]


def read_cursor(entries: dict) -> dict[str, list[str]]:
    """The cursor as [fingerprint, state] per domain; an older [signature, fingerprint] entry is
    checked against the instance again (pending), so nothing is lost or launched blindly."""
    cursor = {}
    for domain, entry in entries.items():
        if isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str) for part in entry):
            cursor[domain] = entry if entry[1] in (DONE, PENDING, GAVE_UP) else [entry[1], PENDING]
    return cursor


def needs_history(scan: DomainScan, entry: list[str] | None) -> bool:
    """Whether the instance must be asked about this domain: not for one done with this data."""
    return scan.fingerprint is not None and entry != [scan.fingerprint, DONE]


def plan_landing(scans: list[DomainScan], history: dict[str, RunHistory], cursor: dict[str, list[str]],
                 registered: set[str], max_retries: int, invalid: list[str] = (),
                 refused: list[tuple[str, str]] = ()) -> LandingPlan:
    """Which domains to register and run, from the scans and what the instance knows of their runs.

    A domain not scanned to a fingerprint this tick (unsettled, still hashing, an error, no data
    yet) keeps its cursor entry as it was.
    """
    notes = [f"skipping folder {name!r}: not a valid domain key (lowercase letters, digits, '_', '-')" for name in invalid]
    warnings = [f"skipping folder {name!r}: {reason}" for name, reason in refused]
    new_domains, runs, next_cursor = [], {}, {}
    for scan in scans:
        previous = cursor.get(scan.domain)
        if scan.fingerprint is None:
            if scan.error:
                warnings.append(f"{scan.domain}: not scanned this tick: {scan.error}")
            elif scan.progress:
                notes.append(f"{scan.domain}: hashing, {scan.progress[0]} of {scan.progress[1]} bytes; "
                             "going on next tick")
            elif scan.unsettled:
                notes.append(f"{scan.domain}: waiting for {len(scan.unsettled)} file(s) to settle: {', '.join(scan.unsettled[:5])}")
            if previous:
                next_cursor[scan.domain] = previous  # keep the last settled state
            continue
        if scan.domain not in registered:
            new_domains.append(scan.domain)
        if not needs_history(scan, previous):
            next_cursor[scan.domain] = previous
            continue
        state, attempt, line, loud = decide(scan.domain, scan.fingerprint, history[scan.domain], max_retries,
                                            new=scan.domain not in registered)
        next_cursor[scan.domain] = [scan.fingerprint, state]
        if attempt is not None:
            runs[scan.domain] = (scan.fingerprint, attempt)
        if line:
            (warnings if loud else notes).append(line)
    seen = {scan.domain for scan in scans} | {name for name, _ in refused}
    for gone in sorted(set(cursor) - seen):
        notes.append(f"{gone}: landing folder is gone; its partition and artifacts are kept")
    for name in sorted(set(cursor) & {name for name, _ in refused}):
        next_cursor[name] = cursor[name]
    return LandingPlan(new_domains, runs, next_cursor, notes, warnings)


def decide(domain: str, fingerprint: str, history: RunHistory, max_retries: int,
           new: bool = False) -> tuple[str, int | None, str | None, bool]:
    """(state, attempt to launch or None, log line or None, whether the line needs a person)."""
    next_attempt = 0 if history.last_attempt is None else history.last_attempt + 1
    if history.in_flight:
        return PENDING, None, (f"{domain}: run {history.in_flight[0]} of this domain is queued or running; "
                               "looking again when it has finished"), False
    if history.streak and history.streak[0]:
        return DONE, None, None, False
    failures = next((i for i, ok in enumerate(history.streak) if ok), len(history.streak))
    if failures > max_retries:
        return GAVE_UP, None, (
            f"{domain}: gave up on landed data {fingerprint}: its last {failures} run(s) failed "
            f"(1 run + {max_retries} automatic retries). Fix the cause, then change the data or launch "
            f"domain_finetune_job for partition {domain!r} by hand"), True
    if failures:
        return PENDING, next_attempt, (f"{domain}: the last run on this data failed; retrying "
                                       f"(retry {failures} of {max_retries})"), True
    if new:
        return PENDING, next_attempt, f"{domain}: new domain, registering and running it", False
    if history.ingested == fingerprint:
        return DONE, None, None, False  # first look at data raw_corpus already read
    return PENDING, next_attempt, f"{domain}: landed data changed, retraining this domain", False
