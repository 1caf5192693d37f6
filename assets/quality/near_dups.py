"""Near-duplicate detection: one-permutation MinHash over character shingles, banded LSH, verification.

Exact de-duplication misses the copies real corpora are full of (a changed date, a signature, a
re-wrapped paragraph). Two texts are near-duplicates when the Jaccard similarity of their sets of
character 5-grams (ASCII lower-cased, any whitespace read as a space) reaches the threshold.

Classic MinHash hashes every shingle once per permutation (128x the work); one-permutation hashing
hashes each shingle once and keeps the minimum per bin (the top bits of the hash choose one of 128
bins), with empty bins filled from their neighbours ("rotation densification", Shrivastava 2017).
The whole batch is one byte buffer (the Arrow string column, no per-text Python loop), so signing
runs at tens of MB/s. LSH bands those signatures so that only likely pairs are compared, then the
full signatures verify each candidate.

Everything is seeded arithmetic in numpy, so the same texts give the same clusters in any process
(Python's own `hash` is salted per process and is not used).
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

SHINGLE_BYTES = 5
NUM_BINS = 128
_EMPTY = np.uint16(0xFFFF)  # no shingle fell into the bin (values are 15-bit, so never equal)
_VALUE_BITS = 15
_SLICE_BYTES = 4 << 20
# Byte map applied before shingling: ASCII upper case to lower, every ASCII whitespace to a space.
_FOLD = np.arange(256, dtype=np.uint8)
_FOLD[ord("A"):ord("Z") + 1] += 32
_FOLD[[9, 10, 11, 12, 13]] = 32


@dataclass(frozen=True)
class NearDuplicates:
    cluster: np.ndarray  # (n,) index of each text's cluster representative (its first member)
    pairs_checked: int  # candidate pairs verified after LSH

    @property
    def duplicates(self) -> np.ndarray:
        """Boolean mask of texts that are not their cluster's first member."""
        return self.cluster != np.arange(len(self.cluster))


def signatures(texts: Sequence[str] | pl.Series) -> np.ndarray:
    """(n, NUM_BINS) one-permutation MinHash signatures (uint16) of UTF-8 byte 5-grams."""
    series = (texts if isinstance(texts, pl.Series) else pl.Series(list(texts), dtype=pl.String)).fill_null("")
    # Work in slices of a few MB: the per-byte arrays (hash, text index) are 4-8x the text's size.
    sizes = series.str.len_bytes().cum_sum().to_numpy()
    if len(series) > 1 and sizes[-1] > _SLICE_BYTES:
        cuts = np.searchsorted(sizes, np.arange(_SLICE_BYTES, sizes[-1], _SLICE_BYTES), side="right")
        bounds = np.unique(np.r_[0, cuts, len(series)])
        # numpy releases the GIL in its loops, so slices sign in parallel on every core.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return np.concatenate(list(pool.map(lambda ab: _sign(series[ab[0]:ab[1]]), zip(bounds[:-1], bounds[1:]))))
    return _sign(series)


def _sign(series: pl.Series) -> np.ndarray:
    array = series.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    data = _FOLD[np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0]:offsets[-1]]] if data_buffer else np.zeros(0, np.uint8)
    offsets = offsets - offsets[0]
    n, k = len(array), SHINGLE_BYTES
    lengths = np.diff(offsets)
    out = np.full((n + 1) * NUM_BINS, _EMPTY, dtype=np.uint16)
    windows = len(data) - k + 1
    if windows > 0:
        with np.errstate(over="ignore"):  # uint32 arithmetic wraps, which is what a hash wants
            h = data[:windows] * np.uint32(16777619)
            for j in range(1, k):  # FNV-style fold of the window's bytes, then a cheap finaliser
                h ^= data[j:j + windows]
                h *= np.uint32(16777619)
            h ^= h >> np.uint32(15)
            h *= np.uint32(0x2C1B3C6D)
            h ^= h >> np.uint32(12)
        doc = np.repeat(np.arange(n, dtype=np.int32), lengths)
        # A window that crosses into the next text goes to a spare row (n) that is thrown away.
        doc = np.where(doc[:windows] == doc[k - 1:], doc[:windows], n).astype(np.int64)
        doc *= NUM_BINS
        doc += h >> np.uint32(32 - 7)
        np.minimum.at(out, doc, (h & np.uint32((1 << _VALUE_BITS) - 1)).astype(np.uint16))
    sig = out[:n * NUM_BINS].reshape(n, NUM_BINS)
    short = np.flatnonzero(lengths < k)
    if len(short):  # texts shorter than one shingle: the whole text is their only shingle
        for row in short:
            value = _fmix32(np.array([_fnv(data[offsets[row]:offsets[row + 1]])], dtype=np.uint32))[0]
            sig[row, value >> np.uint32(25)] = value & np.uint32((1 << _VALUE_BITS) - 1)
    return _densify(sig)


def _fnv(data: np.ndarray) -> int:
    value = 2166136261
    for byte in data.tolist():
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value


def _fmix32(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x85EBCA6B)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0xC2B2AE35)
        return h ^ (h >> np.uint32(16))


def _densify(sig: np.ndarray) -> np.ndarray:
    """Fill each empty bin from the nearest non-empty bin to its right (circularly), mixed with the
    distance, so two short texts agree on a filled bin only where they agree on its source."""
    rows = np.flatnonzero((sig == _EMPTY).any(axis=1))
    if not len(rows):
        return sig
    original = sig[rows]
    filled = original.copy()
    todo = filled == _EMPTY
    for step in range(1, NUM_BINS):
        source = np.roll(original, -step, axis=1)
        take = todo & (source != _EMPTY)
        filled[take] = (source[take].astype(np.uint32) * np.uint32(step * 2 + 1) + np.uint32(step)) & np.uint32((1 << _VALUE_BITS) - 1)
        todo &= ~take
        if not todo.any():
            break
    sig[rows] = filled
    return sig


def band_layout(threshold: float, num_bins: int = NUM_BINS) -> tuple[int, int]:
    """(bands, rows) whose LSH threshold (1/b)^(1/r) sits a little below `threshold`, for recall."""
    target = max(threshold - 0.1, 0.05)
    options = [(b, num_bins // b) for b in range(1, num_bins + 1) if num_bins % b == 0]
    return min(options, key=lambda br: abs((1 / br[0]) ** (1 / br[1]) - target))


def cluster_signatures(sig: np.ndarray, threshold: float) -> NearDuplicates:
    """Cluster rows whose estimated Jaccard similarity is at least `threshold`; the earliest row of a
    cluster represents it (landing order decides which copy is kept)."""
    n = len(sig)
    if n < 2:
        return NearDuplicates(np.arange(n), 0)
    bands, rows = band_layout(threshold, sig.shape[1])
    multipliers = np.random.default_rng(7).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    candidates = []
    for band in range(bands):
        with np.errstate(over="ignore"):
            keys = (sig[:, band * rows:(band + 1) * rows].astype(np.uint64) * multipliers).sum(axis=1)
        order = np.argsort(keys, kind="stable")  # stable: each bucket lists its members in row order
        sorted_keys = keys[order]
        starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        first = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]  # each row's bucket head
        member = first != order
        candidates.append(np.stack([first[member], order[member]], axis=1))
    pairs = np.unique(np.concatenate(candidates), axis=0)
    similar = (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1) >= threshold
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs[similar].tolist():
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)  # the earliest text represents the cluster
    while not np.array_equal(jumped := parent[parent], parent):
        parent = jumped  # pointer jumping: every row ends pointing at its root
    return NearDuplicates(parent, len(pairs))


def find_near_duplicates(texts: Sequence[str] | pl.Series, threshold: float) -> NearDuplicates:
    """Cluster texts whose estimated Jaccard similarity of character 5-grams is at least `threshold`."""
    return cluster_signatures(signatures(texts), threshold)
