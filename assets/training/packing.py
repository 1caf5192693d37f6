"""Batching without wasted tokens: packed blocks, or batches of similar length.

Padding every micro-batch to its longest example wasted 40-60% of the tokens on a realistic mix of
lengths. Two ways out, chosen per device and data (see `choose_layout`):

- "blocks": examples are packed first-fit-decreasing into rows. Position ids restart at 0 at every
  example and no attention mask is passed: transformers 5 then detects the restarts
  (`masking_utils.find_packed_sequence_indices`) and builds a block-diagonal causal mask, so no
  token attends across an example boundary (tests/training/test_packing.py proves it).
  Measured on our 2-core CPU: 1.62x real tokens/s over padding.
  Rows come in a few widths (`row_widths`: the longest example's length, then powers of two down to
  MIN_ROW_WIDTH): a row is opened as narrow as the example that opens it allows, shorter examples
  fill any row's gap first, and a micro-batch holds rows of one width, about as many tokens as
  `batch_size` average examples. The block-diagonal mask is computed densely, so attention costs
  width^2 per row: on the benchmark's mix (median ~70 of 512 tokens), rows of 512/256/128 trained
  1.17x the tokens/s of rows of 512 only (bf16, eager attention), padding 0.64% instead of 0.29%.
- "by_length": examples sorted by length inside shuffled windows, then padded per micro-batch (1.53x).
- "off": random micro-batches padded to their longest (the baseline).

Flattening a whole micro-batch into one long row measured only 1.29x here: without a varlen attention
kernel the attention over the long row is quadratic. It is the right layout where flash-attention's
varlen kernel exists (CUDA), which this CPU-first build does not ship.

Scale: a million examples are planned, packed and laid out for two epochs in seconds
(benchmarks/pack_throughput.py). The packing is computed a distinct length at a time in numpy and
once per Layout and dataset; epochs only shuffle the packed rows. Lengths may be a list or a numpy
array.

Pure: no dagster; torch is imported inside the collate functions.
"""

import gc
import hashlib
import math
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import Literal

import numpy as np

Packing = Literal["auto", "blocks", "by_length", "off"]
Lengths = Sequence[int] | np.ndarray  # tokens per example, indexed by example id
LENGTH_WINDOW = 50  # micro-batches per by_length sorting window: long enough to group, short enough to mix
# Row widths: measured on 200k examples of the benchmark's mix (median ~100 of 512 tokens), widths
# 512/256/128 pad 0.66% of the positions (one width: 0.29%) and cut the mean row width a token sits
# in from 512 to 273; adding 64 cut it only to 267 but padded 2.1% (a row of 64 fits few examples).
MIN_ROW_WIDTH = 128
ROW_WIDTH_CLASSES = 3  # widths per layout: the block and up to two powers of two under it (compute.row_width_classes)


def choose_layout(requested: Packing, lengths: Lengths, batch_size: int, seed: int, width_classes: int = ROW_WIDTH_CLASSES) -> "Layout":
    """The requested layout; 'auto' takes blocks (the CPU benchmark's winner, 1.62x vs 1.53x) unless
    batching by length pads clearly less, as on a narrow mix of long examples where only one fits a
    block (measured on the sample domain: 26% padding in blocks, a few % by length). Packed rows come
    in up to `width_classes` widths (row_widths)."""
    if requested != "auto":
        return plan_layout(requested, lengths, batch_size, width_classes=width_classes)
    blocks = plan_layout("blocks", lengths, batch_size, width_classes=width_classes)
    by_length = plan_layout("by_length", lengths, batch_size)
    share = {layout.mode: layout.first_epoch_pad_share(lengths, seed) for layout in (blocks, by_length)}
    return blocks if share["blocks"] <= share["by_length"] + 0.01 else by_length


@dataclass(frozen=True)
class Layout:
    """How one epoch's examples become micro-batches (lists of rows, a row a list of example ids)."""

    mode: str
    block_len: int  # tokens of the widest packed row (blocks) or 0
    rows_per_batch: int  # rows of block_len per micro-batch (blocks), or examples per micro-batch
    widths: tuple[int, ...] = ()  # packed row widths, widest (block_len) first; () when not packing
    # The packed rows of the last dataset seen, keyed by a digest of its lengths: packing does not
    # depend on the epoch, so every epoch after the first only shuffles them.
    _packed: dict[bytes, list[list[int]]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _capacities: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)  # by id of the rows

    def epoch(self, lengths: Lengths, seed: int, epoch: int) -> list[list[list[int]]]:
        """Micro-batches of one epoch; a pure function of (lengths, seed, epoch)."""
        rng = random.Random(seed * 1_000_003 + epoch)
        with _gc_paused():
            if self.mode == "blocks":
                return self._packed_epoch(lengths, rng)
            rows = [[i] for i in self._order(_as_lengths(lengths), rng).tolist()]
            batches = [rows[s : s + self.rows_per_batch] for s in range(0, len(rows), self.rows_per_batch)]
        if self.mode == "by_length":
            rng.shuffle(batches)  # sorted windows would otherwise always start with the longest batch
        return batches

    def _packed_epoch(self, lengths: Lengths, rng: random.Random) -> list[list[list[int]]]:
        """Packed rows shuffled, cut into micro-batches of one width each (about the same tokens per
        micro-batch at every width), the micro-batches shuffled so widths mix over the epoch."""
        rows = self.rows(lengths)
        order = list(range(len(rows)))
        rng.shuffle(order)
        shuffled = np.asarray(order, dtype=np.int64)
        width = self.row_capacities(lengths)[shuffled]
        batches: list[list[list[int]]] = []
        for w in self.widths:
            mine = [list(rows[r]) for r in shuffled[width == w].tolist()]  # copies: the caller may change what it gets
            per = self.rows_for(w)
            batches += [mine[s : s + per] for s in range(0, len(mine), per)]
        if len(self.widths) > 1:
            rng.shuffle(batches)
        return batches

    def rows_for(self, width: int) -> int:
        """Packed rows of `width` per micro-batch: as many tokens as rows_per_batch rows of block_len."""
        return max(1, round(self.rows_per_batch * self.block_len / width))

    def row_capacities(self, lengths: Lengths) -> np.ndarray:
        """Width of each packed row (blocks): the narrowest width its tokens fit (computed once per dataset)."""
        rows = self.rows(lengths)
        if id(rows) in self._capacities:
            return self._capacities[id(rows)]
        sizes = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        tokens = np.add.reduceat(_as_lengths(lengths)[np.fromiter(chain.from_iterable(rows), dtype=np.int64)],
                                 np.concatenate([[0], np.cumsum(sizes)[:-1]])) if rows else np.empty(0, np.int64)
        self._capacities.clear()
        self._capacities[id(rows)] = narrowest_width(tokens, self.widths)
        return self._capacities[id(rows)]

    def width_of(self, batch: list[list[int]], lengths: Lengths) -> int:
        """Tokens per row of this micro-batch as collated: its width class (blocks), or 0 (pad to the longest)."""
        if self.mode != "blocks":
            return 0
        widest = max(sum(int(lengths[i]) for i in row) for row in batch)  # per call: no copy of all the lengths
        return int(narrowest_width(np.asarray([widest]), self.widths)[0])

    def first_epoch_pad_share(self, lengths: Lengths, seed: int) -> float:
        """pad_share_of(self.epoch(lengths, seed, 0), lengths, self.block_len), the same figure, without
        building the epoch's lists (at a million examples that took most of choose_layout's time):
        packed rows pad the same in any order, and shuffling whole micro-batches changes no width."""
        array = _as_lengths(lengths)
        real = int(array.sum())
        if self.mode == "blocks":
            return 1.0 - real / max(int(self.row_capacities(array).sum()), 1)
        widths = array[self._order(array, random.Random(seed * 1_000_003))]
        firsts = np.arange(0, widths.size, self.rows_per_batch)
        rows_in = np.diff(np.append(firsts, widths.size))
        computed = int((rows_in * np.maximum.reduceat(widths, firsts)).sum()) if widths.size else 0
        return 1.0 - real / max(computed, 1)

    def _order(self, lengths: np.ndarray, rng: random.Random) -> np.ndarray:
        """Example ids one per row ('off', 'by_length'): shuffled, then longest first in windows."""
        order = list(range(lengths.size))
        rng.shuffle(order)  # random.Random, not numpy: the epochs stay those of earlier runs (resumes)
        ids = np.asarray(order, dtype=np.int64)
        if self.mode != "by_length":
            return ids
        window = LENGTH_WINDOW * self.rows_per_batch
        longest = int(lengths.max()) if lengths.size else 0
        key = (np.arange(ids.size, dtype=np.int64) // window) * (longest + 1) + (longest - lengths[ids])
        return ids[np.argsort(key, kind="stable")]  # stable: equal lengths keep their shuffled order

    def rows(self, lengths: Lengths) -> list[list[int]]:
        """The packed rows (blocks mode), computed once per dataset; do not change what it returns."""
        array = _as_lengths(lengths)
        key = hashlib.blake2b(array.tobytes(), digest_size=16).digest()
        if key not in self._packed:
            self._packed.clear()  # one dataset per layout in practice: keep memory to one packing
            self._capacities.clear()  # keyed by the id of rows just dropped: an id can be reused
            self._packed[key] = pack_blocks(array, self.block_len, self.widths)
        return self._packed[key]


def plan_layout(mode: str, lengths: Lengths, batch_size: int, block_len: int = 0, width_classes: int = ROW_WIDTH_CLASSES) -> Layout:
    """Rows per micro-batch chosen so a packed micro-batch holds about `batch_size` examples' tokens."""
    if mode != "blocks":
        return Layout(mode, 0, batch_size)
    array = _as_lengths(lengths)
    longest = int(array.max())
    block = block_len or longest
    if block < longest:
        raise ValueError(f"block_len {block} is shorter than the longest example ({longest} tokens)")
    rows = max(1, round(batch_size * (int(array.sum()) / len(array)) / block))
    return Layout(mode, block, rows, row_widths(block, width_classes))


def row_widths(block_len: int, classes: int = ROW_WIDTH_CLASSES) -> tuple[int, ...]:
    """The packed row widths for a block: itself, then powers of two under it down to MIN_ROW_WIDTH,
    `classes` widths at most."""
    below = [2**k for k in range(int(math.log2(max(block_len, 1))) + 1) if MIN_ROW_WIDTH <= 2**k < block_len]
    return (block_len, *sorted(below, reverse=True)[: max(classes, 1) - 1])


def narrowest_width(tokens: np.ndarray, widths: Sequence[int]) -> np.ndarray:
    """For each token count, the narrowest of `widths` that holds it (the widest holds everything)."""
    ascending = np.sort(np.asarray(widths, dtype=np.int64))
    return ascending[np.minimum(np.searchsorted(ascending, tokens, side="left"), ascending.size - 1)]


def pack_blocks(lengths: Lengths, block_len: int, widths: Sequence[int] = ()) -> list[list[int]]:
    """First-fit decreasing: example ids grouped into rows of at most `block_len` tokens. With
    `widths` (row_widths), a new row is only as wide as the narrowest width that holds the example
    opening it; every example still goes into the first row with room, whatever its width.

    The same rows as the textbook loop (examples longest first, ties by id, each into the first row
    with room, else a new row), computed one distinct length at a time: all examples of length n
    go, in id order, to the rows with room >= n in row order, each row taking room // n of them
    (after one lands, that row is still the first with room), and what is left opens new rows of
    block_len // n. So O(distinct lengths x open rows) numpy work instead of O(examples x rows)
    Python steps: the loop took minutes at 100k examples, this takes a second at a million."""
    array = _as_lengths(lengths)
    if array.size == 0:
        return []
    if array.min() < 0 or array.max() > block_len:
        raise ValueError(f"example lengths must lie in 0..block_len ({block_len}); got {array.min()}..{array.max()}")
    order = np.argsort(-array, kind="stable")  # longest first, ties by id: the order the examples are placed in
    ordered = array[order]
    row_of = np.empty(array.size, dtype=np.int64)  # row of each example, in placing order
    room = np.empty(array.size + 1, dtype=np.int64)  # free tokens of each row; never more rows than examples
    rows = 0
    placed = int(np.count_nonzero(ordered))  # zero-length examples come last and are placed below
    smallest = int(ordered[placed - 1]) if placed else 0
    open_rows = np.empty(0, dtype=np.int64)  # rows with room for the smallest example, in row order
    starts = np.flatnonzero(np.diff(ordered[:placed], prepend=-1)).tolist() + [placed]
    for start, end in zip(starts[:-1], starts[1:], strict=True):
        n, count = int(ordered[start]), end - start
        fits = open_rows[room[open_rows] >= n]
        taken = 0
        if fits.size:
            takes = room[fits] // n
            reach = np.cumsum(takes)
            last = int(np.searchsorted(reach, count))  # the row where this length runs out, or fits.size
            if last < fits.size:
                fits, takes = fits[: last + 1], takes[: last + 1].copy()
                takes[last] = count - (int(reach[last - 1]) if last else 0)
            taken = int(takes.sum())
            row_of[start : start + taken] = np.repeat(fits, takes)
            room[fits] -= takes * n
        left = count - taken
        if left:
            capacity = int(narrowest_width(np.asarray([n]), widths)[0]) if widths else block_len
            per_row = capacity // n
            new = -(-left // per_row)
            row_of[start + taken : end] = rows + np.arange(left) // per_row
            room[rows : rows + new] = capacity - per_row * n
            room[rows + new - 1] = capacity - (left - per_row * (new - 1)) * n
            open_rows = np.concatenate([open_rows, np.arange(rows, rows + new)])
            rows += new
        open_rows = open_rows[room[open_rows] >= smallest]  # the rest can never take another example
    if placed < array.size:  # length 0 fits anywhere: the first row takes them (the loop's first fit)
        row_of[placed:] = 0
        rows = max(rows, 1)
    ids = order[np.argsort(row_of, kind="stable")].tolist()  # grouped by row, in the order they were placed
    bounds = np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=rows))]).tolist()
    return [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class StepStream:
    """The micro-batches of each optimiser step: epochs laid out one after another (each a pure
    function of seed and epoch), cut into steps of `per_step` micro-batches. So a resumed run, or N
    processes taking micro-batch j % N, see exactly what one uninterrupted process would."""

    def __init__(self, layout: Layout, lengths: Lengths, seed: int, per_step: int) -> None:
        self.layout, self.lengths, self.seed, self.per_step = layout, lengths, seed, per_step
        self._epochs = {0: layout.epoch(lengths, seed, 0)}

    @property
    def first_epoch(self) -> list[list[list[int]]]:
        return self._epochs[0]

    def step(self, step: int) -> list[list[list[int]]]:
        """The micro-batches of optimiser step `step` (0-based)."""
        out = []
        for j in range(step * self.per_step, (step + 1) * self.per_step):
            epoch, index = divmod(j, len(self._epochs[0]))
            if epoch not in self._epochs:
                self._epochs[epoch] = self.layout.epoch(self.lengths, self.seed, epoch)
            out.append(self._epochs[epoch][index])
        return out


def pad_share_of(batches: list[list[list[int]]], lengths: Lengths, block_len: int, widths: Sequence[int] = ()) -> float:
    """Share of the computed positions that hold no real token, over the given micro-batches: rows
    are `block_len` wide, or as wide as the narrowest of `widths` that holds the widest row of their
    micro-batch (Layout.width_of), or (block_len 0) as wide as that widest row."""
    batches = [batch for batch in batches if batch]
    rows = [row for batch in batches for row in batch]
    sizes = [len(row) for row in rows]
    ids = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=sum(sizes))
    ends = np.cumsum(sizes, dtype=np.int64)
    tokens = np.concatenate([[0], np.cumsum(_as_lengths(lengths)[ids])])
    filled = tokens[ends] - tokens[ends - np.asarray(sizes, dtype=np.int64)]  # tokens per row
    real = int(filled.sum())
    if block_len and not widths:
        computed = len(rows) * block_len
    elif rows:
        per_batch = np.asarray([len(batch) for batch in batches], dtype=np.int64)
        firsts = np.concatenate([[0], np.cumsum(per_batch)[:-1]])
        widest = np.maximum.reduceat(filled, firsts)
        computed = int((per_batch * (narrowest_width(widest, widths) if widths else widest)).sum())
    else:
        computed = 0
    return 1.0 - real / max(computed, 1)


def steps_for(micro_batches_per_epoch: int, per_step: int, epochs: float, max_steps: int) -> int:
    """Optimiser steps: max_steps when > 0, else enough micro-batches for `epochs` passes."""
    if max_steps > 0:
        return max_steps
    return max(1, math.ceil(epochs * micro_batches_per_epoch / per_step))


def _as_lengths(lengths: Lengths) -> np.ndarray:
    return np.asarray(lengths, dtype=np.int64).reshape(-1)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building a million small lists runs the cycle collector again and again, each pass walking every
    live object: an epoch of a million one-example rows took 2.6-4 s with it, 1.5 s without (measured).
    Lists of ints hold no cycles, so nothing is left for it to find."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
