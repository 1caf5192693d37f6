"""Domain keys (assets/common/domains.py): what may become a partition key and a folder name."""

import pytest

from assets.common.domains import DOMAIN_KEY_PATTERN, InvalidDomainKey, validate_domain_key


@pytest.mark.parametrize(
    "key",
    ["a", "0", "legal", "customer-support", "med_notes", "v2", "9lives", "a-_-b", "a" * 63, "x" + "-" * 62],
)
def test_valid_keys_are_returned_unchanged(key):
    assert validate_domain_key(key) is key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "a" * 64,  # 64 characters: one too many
        "Legal",  # uppercase
        "-leading-dash",
        "_leading_underscore",
        "has space",
        "dot.ted",
        "slash/path",
        "..",
        "../escape",
        "back\\slash",
        "trailing\n",  # `$` alone would accept a trailing newline; fullmatch must not
        "ünïcode",
        "tab\tkey",
        " padded",
    ],
)
def test_invalid_keys_raise(key):
    with pytest.raises(InvalidDomainKey):
        validate_domain_key(key)


@pytest.mark.parametrize("key", [None, 1, b"legal", ["legal"]])
def test_non_strings_raise_domain_error_not_type_error(key):
    with pytest.raises(InvalidDomainKey):
        validate_domain_key(key)


def test_error_is_a_value_error_with_a_helpful_message():
    assert issubclass(InvalidDomainKey, ValueError)
    with pytest.raises(ValueError) as raised:
        validate_domain_key("Bad Key")
    message = str(raised.value)
    assert "'Bad Key'" in message
    assert "1-63" in message
    assert DOMAIN_KEY_PATTERN.pattern in message
    assert "landing folder" in message


def test_pattern_matches_design():
    assert DOMAIN_KEY_PATTERN.pattern == r"^[a-z0-9][a-z0-9_-]{0,62}$"
