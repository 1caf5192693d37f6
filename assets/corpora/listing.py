"""Which files of a domain folder are read, walked without trusting the folder.

Pure module (stdlib, never dagster): the landing sensor, raw_corpus and the readers list a domain's
files through here, so all three see the same files.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from assets.common.domains import check_domain_folder, is_domain_folder_name
from assets.corpora.decoding import path_name
from assets.settings.domain_file import SETTINGS_NAMES

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".txt")
# Names left behind by uploads in progress and editors; reading them would ingest half a file.
PARTIAL_ENDINGS = (".tmp", ".part", ".partial", "~")


@dataclass(frozen=True)
class DomainListing:
    paths: list[Path]                # data files to read, sorted by relative path
    refused: list[tuple[str, str]]   # (relative name, reason): entries listed but never read
    # (relative name, reason): left out on purpose (hidden, partial upload, the settings file), so a
    # user who wonders where a file went finds it in the metadata instead of nowhere.
    skipped: list[tuple[str, str]] = field(default_factory=list)


def list_domain_files(domain_dir: Path, landing_root: Path | None = None) -> list[Path]:
    """Every candidate data file under `domain_dir`, sorted by relative path (see scan_domain_files)."""
    return scan_domain_files(domain_dir, landing_root).paths


def scan_domain_files(domain_dir: Path, landing_root: Path | None = None) -> DomainListing:
    """Walk `domain_dir` without trusting it.

    Unsupported suffixes are listed on purpose: they are quarantined so a mis-exported file shows
    up in the report instead of silently vanishing. Hidden names are skipped at any depth (.git,
    .ipynb_checkpoints); the settings file only at the top, where settings are read from; both, and
    partial-upload names, are listed in `skipped` with their reason.

    The domain folder itself must be a real folder: a symlinked one raises `UnsafeDomainFolder`
    (checked before and after the walk). The landing root above it may be a symlink.
    Symlinks inside the domain are followed only where the result stays this domain's data:
    - into the domain's own folder: followed;
    - into a hidden entry of the landing root (`landing/.shared/...`): followed. A hidden name is
      never a domain, so this is the one place to keep files several domains share;
    - to the landing root or a folder above the domain (it would pull every domain in), into
      another domain's folder (its rows would train this domain), to anything else inside the
      landing root whose top-level name could be a domain, or outside the landing root (/etc,
      another user's home): refused with a reason. Only "own folder or hidden" is allowed because
      a folder with a valid key may become a domain at any moment.
    `landing_root` defaults to the domain folder's parent. A broken link, a name that is not UTF-8
    and a FIFO or device (reading it would hang) are refused with a reason. Linked folders are
    walked after the real tree and every folder once, so a link loop cannot hang the walk.
    """
    domain_dir = check_domain_folder(Path(domain_dir))
    root = domain_dir.parent if landing_root is None else Path(landing_root)
    real_root, real_domain = Path(os.path.realpath(root)), Path(os.path.realpath(domain_dir))
    holder = real_domain.parent  # the folder that holds the domains (the landing root in production)
    found: dict[str, Path] = {}
    refused: dict[str, str] = {}
    skipped: dict[str, str] = {}
    visited: set[str] = set()
    linked_dirs: list[tuple[str, Path]] = []

    def walk(folder: Path, prefix: str) -> None:
        real = os.path.realpath(folder)
        if real in visited:
            refused[prefix.rstrip("/")] = (f"folder {path_name(real)} is read already through "
                                           "another path (a symlink loop or a duplicate); skipped")
            return
        visited.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            refused[prefix.rstrip("/") or "."] = f"cannot list folder: {os_error(error)}"
            return
        for entry in entries:
            name, path = prefix + entry.name, Path(entry.path)
            reason = skip_reason(entry.name, top=not prefix)
            if reason:
                skipped[path_name(name)] = reason
                continue
            if path_name(entry.name) != entry.name:  # callers hash names as UTF-8
                refused[path_name(name)] = "name is not valid UTF-8; rename it to be read"
            elif entry.is_symlink():
                follow(path, name)
            elif entry.is_dir(follow_symlinks=False):
                walk(path, name + "/")
            elif entry.is_file(follow_symlinks=False):
                found[name] = path
            else:
                refused[name] = "not a regular file (a FIFO, socket or device); not read"

    def follow(link: Path, name: str) -> None:
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):  # missing target, or a loop of links (RuntimeError < 3.13)
            refused[name] = f"broken symlink to {path_name(os.readlink(link))}"
            return
        if reason := link_refusal(target):
            refused[name] = f"symlink to {path_name(str(target))} {reason}; refused"
        elif target.is_dir():
            linked_dirs.append((name, link))
        elif target.is_file():
            found[name] = link
        else:
            refused[name] = "symlink to something that is not a regular file; not read"

    def link_refusal(target: Path) -> str | None:
        if target.is_relative_to(real_domain):
            return None
        if not target.is_relative_to(real_root):
            return "points outside the landing root"
        if real_domain.is_relative_to(target):
            return "is the landing root or a folder above this domain (it would read every domain)"
        top = target.relative_to(holder).parts[0] if target.is_relative_to(holder) else ""
        if top.startswith("."):
            return None
        if top and is_domain_folder_name(top):
            return f"points into {top!r}, another domain's folder (each domain reads only its own files)"
        return ("points into the landing root outside any hidden folder (shared files belong in a hidden "
                "folder such as .shared/)")

    walk(domain_dir, "")
    while linked_dirs:
        name, link = linked_dirs.pop(0)
        walk(link, name + "/")
    check_domain_folder(domain_dir)  # swapped for a link during the walk: what was read is not trusted
    return DomainListing([found[name] for name in sorted(found)], sorted(refused.items()), sorted(skipped.items()))


def skip_reason(name: str, top: bool) -> str | None:
    """Why a name is left out on purpose, or None when it is a candidate data file."""
    if name.startswith("."):
        return "hidden name (starts with '.'); not read"
    if name.endswith(PARTIAL_ENDINGS):
        return f"temporary or partial upload name (ends with {', '.join(PARTIAL_ENDINGS)}); read once renamed"
    if top and name in SETTINGS_NAMES:
        return "the domain's settings file; read as settings, not as data"
    return None


def os_error(error: OSError) -> str:
    return f"[Errno {error.errno}] {error.strerror}"
