"""Personal data and credentials as regular expressions, shared by the cleaning stage (training
text) and every report that quotes landed data (quarantine snippets, rejection previews).

Regular expressions run inside polars (Rust regex, no look-around), tuned for precision: a phone
pattern that matched "2024-2025" or "350 g" would shred recipes and dates, so only unambiguous
phone layouts are recognised. Pure module (polars, never dagster).
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


# Report text (quarantine snippets and reasons) is cut at a fixed length, so an address may be cut
# in half ("jane.doe@exam"), where the patterns above no longer match. Any token holding an "@" is
# therefore withheld whole, and a cut snippet loses its last token (up to 64 characters): a cut
# phone number or key is a prefix no pattern recognises.
_AT_TOKEN = (r"[^\s\"'<>]*@[^\s\"'<>]*", "<EMAIL>")
_CUT_TOKEN = r"(^|\s)\S{1,64}$"


def scrub_report_text(column: str, cut_at: int | None = None) -> pl.Expr:
    """Expression: `column` (snippets, reasons) with personal data replaced, for reports and the
    event log; `cut_at`: the length at which the text was cut, so its last token may be partial."""
    expr = pl.col(column)
    if cut_at:
        expr = pl.when(expr.str.len_chars() >= cut_at).then(expr.str.replace(_CUT_TOKEN, "${1}…")).otherwise(expr)
    for pattern, replacement in (*PATTERNS.values(), _AT_TOKEN):
        expr = expr.str.replace_all(pattern, replacement)
    return expr.alias(column)
