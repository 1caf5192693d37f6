"""The tokens of a text made of pieces of one already encoded, without encoding it again.

A fast tokenizer (HF `tokenizers`) first cuts the text at its added tokens (`<|eot_id|>`,
`<|im_start|>`, ...), matched on the original text leftmost-longest, and then normalizes,
pre-tokenizes and encodes each piece between them on its own. So when a text `t` is a prefix of an
encoded text `T` and the cut `len(t)` falls exactly at the edge of such an added token in `T`'s
encoding (one ends there, or one starts there), `t` is cut into the same pieces as `T` up to there:
its tokens are exactly `T`'s tokens up to that edge, with the same offsets. Nothing is assumed
about the template: the prefix and the edge are checked on the rendered texts, and wherever they
do not hold (a template that rewrites earlier turns, as Qwen3 drops earlier reasoning; a cut
inside a piece) the caller encodes the text as before.

The same holds for a text `t = T[:e] + T[x:y]` (a conversation's system prompt and first turn
header, then later turns of it): its tokens are `T`'s up to `e`, then `T`'s from `x` to `y`, when
an added token ends at `e` and at `x` (the search for added tokens starts afresh after each, so
what follows is cut alike) and an edge is at `y`. That needs the token at each join to be one no
other added token contains (no match could start before it and reach across the join) and no
added token to strip whitespace (Phi-3's would reach across it); otherwise only prefixes are used.
A piece is treated by where it starts only in one way, whether it starts the text (Metaspace's
prepend_scheme "first"): a prefix keeps every position, and a join puts no piece at position 0.

Only added tokens matched before normalization count (`normalized=False`: a normalized one is
matched inside a normalized piece, which the cut would shorten), and none at all where the
tokenizer is asked to split special tokens (they are then plain text) or an added token is
`single_word` (whether it matches depends on the character after it, which a prefix lacks).
An added token that strips whitespace (Phi-3's `rstrip`) has that whitespace in its offsets, so an
edge is found only where nothing was stripped across the cut. tests/tokenization/test_prefixes.py
checks the counts against real encodings on the built-in and the family tokenizers.

Pure: no dagster.
"""

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Edges:
    """The added tokens a tokenizer cuts text at: `ids` (sorted) and `joins`, those a text may be joined after."""

    ids: np.ndarray
    joins: np.ndarray


_EDGES: dict[int, tuple[Any, Edges | None]] = {}


def edge_tokens(tokenizer: Any) -> Edges | None:
    """The added tokens the Rust tokenizer cuts the text at before normalizing it; None where
    prefixes cannot be derived (a slow tokenizer, split_special_tokens, a single_word added token)."""
    backend = getattr(tokenizer, "_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is None or getattr(tokenizer, "split_special_tokens", False):
        return None
    known = _EDGES.get(id(tokenizer))
    if known is not None and known[0] is tokenizer:
        return known[1]
    added = backend.get_added_tokens_decoder()
    edges = None
    if not any(token.single_word for token in added.values()):
        cut = {i: token.content for i, token in added.items() if not token.normalized}
        strips = any(token.lstrip or token.rstrip for token in added.values())
        contents = [token.content for token in added.values()]
        joins = [] if strips else [i for i, text in cut.items() if not any(text in other and text != other for other in contents)]
        edges = Edges(np.array(sorted(cut), dtype=np.int64), np.array(sorted(joins), dtype=np.int64))
    _EDGES.clear()  # one tokenizer at a time in practice
    _EDGES[id(tokenizer)] = (tokenizer, edges)
    return edges


@dataclass
class Reference:
    """An encoded text (no special tokens added): its ids and character offsets, as `arrays` gives them."""

    text: str
    ids: np.ndarray
    offsets: np.ndarray
    edges: Edges
    _cuts: dict[int, int] | None = field(default=None, repr=False)
    _joins: dict[int, int] | None = field(default=None, repr=False)
    _join_at: list[int] = field(default_factory=list, repr=False)

    def cuts(self) -> dict[int, int]:
        """Character position -> tokens before it, at each edge of an added token in the edge set
        and at the end of the text."""
        if self._cuts is None:
            at = np.flatnonzero(np.isin(self.ids, self.edges.ids))
            cuts: dict[int, int] = {}
            # Where the token starts (the tokens before it are the prefix's), then where it ends
            # (it is the prefix's last); at two adjacent added tokens both say the same.
            for position, count in zip(self.offsets[at, 0].tolist(), at.tolist()):
                cuts.setdefault(position, count)
            for position, count in zip(self.offsets[at, 1].tolist(), (at + 1).tolist()):
                cuts.setdefault(position, count)
            cuts[len(self.text)] = len(self.ids)  # the end of the text is an edge too
            self._cuts = cuts
        return self._cuts

    def joins(self) -> dict[int, int]:
        """Character position -> tokens before it, where a token a text may be joined after ends."""
        if self._joins is None:
            at = np.flatnonzero(np.isin(self.ids, self.edges.joins)) if len(self.edges.joins) else np.zeros(0, np.int64)
            self._joins = dict(zip(self.offsets[at, 1].tolist(), (at + 1).tolist()))
            self._join_at = sorted(self._joins)
        return self._joins

    def prefix(self, text: str) -> int | None:
        """How many of this encoding's tokens are `text`'s whole encoding; None where that cannot be
        told without encoding `text` (not a prefix, or the cut is not at an added token's edge)."""
        if len(text) == len(self.text):
            return len(self.ids) if text == self.text else None
        count = self.cuts().get(len(text))
        if count is None or not self.text.startswith(text):
            return None
        return count

    def tokens(self, text: str) -> tuple[np.ndarray, np.ndarray] | None:
        """`text`'s ids and offsets, as a prefix of this text or as a prefix joined to a later piece
        of it; None where neither holds."""
        count = self.prefix(text)
        if count is not None:
            return self.ids[:count], self.offsets[:count]
        joins = self.joins()
        if not joins:
            return None
        whole = self.text
        # The longest join position up to which `text` and this text agree (agreement is monotone).
        lo, hi = 0, bisect_right(self._join_at, len(text))
        while lo < hi:
            mid = (lo + hi) // 2
            e = self._join_at[mid]
            if text[:e] == whole[:e]:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return None
        e = self._join_at[lo - 1]
        rest = text[e:]
        cuts = self.cuts()
        x = whole.find(rest, 1)
        for _ in range(4):  # a later turn repeated word for word: a few places are tried
            if x < 0:
                return None
            if x in joins and x + len(rest) in cuts:
                head, a, b = joins[e], joins[x], cuts[x + len(rest)]
                offsets = np.concatenate([self.offsets[:head], self.offsets[a:b] + (e - x)])
                return np.concatenate([self.ids[:head], self.ids[a:b]]), offsets
            x = whole.find(rest, x + 1)
        return None
