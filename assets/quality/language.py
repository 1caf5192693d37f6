"""Language identification with a model that ships inside its package (py3langid: no download).

Used as a filter only where a domain asks for it (`languages` in the cleaning settings): short or
mixed texts are where language ID errs, so it is never applied silently.
"""

import polars as pl


def identify(texts: list[str]) -> list[str]:
    """ISO 639-1 code per text (py3langid's 97-language model, ~60 µs per short document here)."""
    import py3langid

    return [py3langid.classify(text)[0] if text.strip() else "und" for text in texts]


def language_column(frame: pl.DataFrame) -> pl.Series:
    """The language of each record, judged on all its turns together."""
    joined = frame.select(pl.col("contents").list.join("\n")).to_series().to_list()
    return pl.Series("language", identify(joined), dtype=pl.String)
