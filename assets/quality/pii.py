"""Scrubbing personal data and credentials out of training text, counted by kind.

Regular expressions run inside polars (Rust regex, no look-around), tuned for precision: a phone
pattern that matched "2024-2025" or "350 g" would shred recipes and dates, so only unambiguous
phone layouts are recognised. Matches are replaced by a typed placeholder (`<EMAIL>`, ...), so the
model still sees that something was there without learning the value.
"""

import polars as pl

# kind -> (pattern, replacement). Order matters: credentials first, so a key full of digits is
# not half-eaten by the phone pattern; e-mail before IP so "a@10.0.0.1.example" stays one e-mail.
PATTERNS: dict[str, tuple[str, str]] = {
    "private_key": (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", "<SECRET>"),
    "api_key": (
        r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abprs]-[A-Za-z0-9-]{10,}",
        "<SECRET>",
    ),
    "bearer_token": (r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/-]{20,}=*", "${1} <SECRET>"),
    "credential": (r"(?i)\b(password|passwd|pwd|secret|api[_-]?key|access[_-]?token)(\s*[:=]\s*)[^\s,;]+", "${1}${2}<SECRET>"),
    "email": (r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", "<EMAIL>"),
    "ipv4": (r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b", "<IP>"),
    "ipv6": (r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b|\b(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}:){0,5}[0-9a-fA-F]{1,4}\b", "<IP>"),
    "phone": (
        r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}\d|\(\d{3}\)\s?\d{3}[-.\s]\d{4}\b|\b\d{3}[-.]\d{3}[-.]\d{4}\b",
        "<PHONE>",
    ),
}


def scrub(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Replace personal data in `contents`; returns the frame and the number of matches per kind."""
    counts = {}
    for kind, (pattern, replacement) in PATTERNS.items():
        counts[kind] = int(frame.select(pl.col("contents").list.eval(pl.element().str.count_matches(pattern)).list.sum().sum()).item() or 0)
        if counts[kind]:
            frame = frame.with_columns(pl.col("contents").list.eval(pl.element().str.replace_all(pattern, replacement)))
    return frame, counts
