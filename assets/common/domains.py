"""Domain keys: the partition key of every per-domain asset.

A domain key becomes a folder name (landing and artifacts) and a Dagster partition key, so it is
checked before anything touches the disk: lowercase slug, at most 63 characters.
"""

import re

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
