"""Domain keys: the partition key of every per-domain asset.

A domain key becomes a folder name (landing and artifacts) and a Dagster partition key, so it is
checked before anything touches the disk: lowercase slug, at most 63 characters.
"""

import os
import re
from pathlib import Path

DOMAIN_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class InvalidDomainKey(ValueError):
    """A domain name that cannot be used as a partition key or a folder name."""


def validate_domain_key(key: str) -> str:
    """Return `key` unchanged if it is a valid domain key, else raise `InvalidDomainKey`."""
    if not isinstance(key, str) or not DOMAIN_KEY_PATTERN.fullmatch(key):
        raise InvalidDomainKey(
            f"invalid domain key {key!r}: a domain key is 1-63 characters of lowercase letters, "
            "digits, '_' or '-', starting with a letter or digit (pattern "
            f"{DOMAIN_KEY_PATTERN.pattern}); rename the landing folder"
        )
    return key


class UnsafeDomainFolder(ValueError):
    """A domain folder that must not be read: it is a symlink, so its files live anywhere."""


def is_domain_folder_name(name: str) -> bool:
    """Whether a child of the landing root with this name is (or would become) a domain folder."""
    return bool(DOMAIN_KEY_PATTERN.fullmatch(name))


def check_domain_folder(folder: Path) -> Path:
    """Return `folder` if it may be read as a domain folder, else raise `UnsafeDomainFolder`.

    A domain folder that is itself a symlink (`landing/evil -> /elsewhere`, or `-> ../news`) would
    bring files from outside the landing root, or another domain's rows, into this domain, and the
    link can be swapped at any time; it is refused, also for a domain registered earlier whose
    folder became a link later. The landing root above it may be a symlink: that is the operator's
    choice of where the landing lives, not a producer's.
    """
    folder = Path(folder)
    if os.path.islink(folder):
        try:
            target = os.readlink(folder)
        except OSError:  # removed since: still not a folder to read
            target = "?"
        raise UnsafeDomainFolder(
            f"domain {folder.name!r}: landing folder {folder} is a symlink (to {target}); "
            "a domain folder must be a real folder inside the landing root, so it is not read. "
            "Replace the link by a folder (copy or move the files in)"
        )
    return folder
