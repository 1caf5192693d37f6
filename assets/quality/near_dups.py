"""Near-duplicate detection: one-permutation b-bit MinHash over normalised character shingles, banded
LSH, verification.

Exact de-duplication misses the copies real corpora are full of (a changed date, a signature, a
re-wrapped or re-indented paragraph). Two texts are near-duplicates when the Jaccard similarity of
their sets of shingles reaches the threshold, where a text's shingles are the UTF-8 byte 5-grams of
its normalised form (`normalise`: lower-cased, every run of whitespace, line breaks and tabs included,
read as one space, stripped), the normalisation dedup tools (text-dedup, datatrove) apply. So layout
alone (re-flowed lines, indentation, runs of spaces, tabs, CRLF) never makes two texts less similar;
punctuation and words do. Measured on real documentation (`benchmarks/near_dup_quality.py`), before
this normalisation copies with a re-indent or runs of spaces were mostly missed.

Classic MinHash hashes every shingle once per permutation (hundreds of times the work); one-permutation
hashing hashes each shingle once and keeps the minimum per bin (the top bits of the hash choose one of
NUM_BINS bins). Of each bin's minimum only VALUE_BITS bits are kept (b-bit MinHash, Li & König 2010),
0 marking an empty bin: at high similarities many small bins estimate the Jaccard more precisely than
fewer wide ones in the same bytes (512 bins of 4 bits and 128 of 16 both take 256 bytes a text). The
estimate leaves out bins empty in both texts (Li, Owen & Zhang 2012) and corrects for the 1 in 15
filled bins that agree by chance; on documentation text its standard error at 0.85 is 0.013-0.016,
half that of the 128 densified 16-bit bins used before, and it has no measurable bias. That precision,
and a MARGIN of about one standard error, are what keep merely similar texts (templated docs) apart.

The whole batch is one byte buffer (the Arrow string column, no per-text Python loop), so signing
runs at tens of MB/s. LSH bands those signatures so that only likely pairs are compared, then the
full signatures verify each candidate. Everything is seeded arithmetic in numpy, so the same texts
give the same clusters in any process (Python's own `hash` is salted per process and is not used).
"""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

SHINGLE_BYTES = 5
NUM_BINS = 512
VALUE_BITS = 4
SIGNATURE_BYTES = NUM_BINS * VALUE_BITS // 8  # what cleaning keeps per record: 256
_PER_BYTE = 8 // VALUE_BITS
_BIN_SHIFT = np.uint32(32 - (NUM_BINS.bit_length() - 1))  # the hash's top bits choose the bin
_TOP = np.uint32(1 << int(_BIN_SHIFT))  # hash remainders (the bits below the bin's) are below this
_LEVELS = (1 << VALUE_BITS) - 1  # values a filled bin can take (0 marks an empty bin)
_CHANCE = 1 / _LEVELS  # how often two different minima agree in their kept bits
# Slices of a few MB and at most this many texts: the per-byte arrays (hash, text index) are 4-8x the
# text's size, the per-bin minima 2 KB a text.
_SLICE_BYTES = 4 << 20
_SLICE_ROWS = 8192
_PAIRS_PER_CHUNK = 1 << 16
# A pair is merged when its estimate clears the threshold by about one standard error of the estimate
# there (0.013-0.016 at 0.85 on documentation text): real corpora hold many merely similar texts just
# below any threshold (templated docs), and an unbiased estimate would merge a third of those at
# threshold - 0.01. Copies 0.03 above the threshold are still found (benchmarks/near_dup_quality.py).
MARGIN = 0.01
# Fewest bins to a band: unrelated texts agree on a bin about 1 time in 8 (shared common shingles,
# chance agreement of 4-bit values), so shorter bands would make candidates of most pairs at low
# thresholds. Only thresholds below about 0.62 reach this floor, and lose some recall for it.
_MIN_ROWS = 8
# Whitespace other than a plain space, or a space followed by more whitespace: only what needs
# replacing matches (a pattern matching every single space runs 2.5x slower).
_LAYOUT = r"[^\S ]\s*| \s+"


@dataclass(frozen=True)
class NearDuplicates:
    cluster: np.ndarray  # (n,) index of each text's cluster representative (its first member)
    pairs_checked: int  # candidate pairs verified after LSH

    @property
    def duplicates(self) -> np.ndarray:
        """Boolean mask of texts that are not their cluster's first member."""
        return self.cluster != np.arange(len(self.cluster))


def normalise(texts: Sequence[str] | pl.Series) -> pl.Series:
    """The text near-duplicate detection compares: lower-cased (Unicode), every run of whitespace
    (Unicode's: tabs, CR, LF, no-break spaces) one space, no space at either end."""
    series = (texts if isinstance(texts, pl.Series) else pl.Series(list(texts), dtype=pl.String)).fill_null("")
    return series.str.to_lowercase().str.replace_all(_LAYOUT, " ").str.strip_chars(" ")


def signatures(texts: Sequence[str] | pl.Series) -> np.ndarray:
    """(n, SIGNATURE_BYTES) uint8: each text's NUM_BINS one-permutation MinHash values of VALUE_BITS
    bits, packed in bin order, of its normalised UTF-8 byte 5-grams."""
    series = (texts if isinstance(texts, pl.Series) else pl.Series(list(texts), dtype=pl.String)).fill_null("")
    sizes = series.str.len_bytes().cast(pl.Int64).cum_sum().to_numpy()  # UInt32 would wrap past 4 GB
    if len(series) > 1 and (sizes[-1] > _SLICE_BYTES or len(series) > _SLICE_ROWS):
        cuts = np.searchsorted(sizes, np.arange(_SLICE_BYTES, sizes[-1], _SLICE_BYTES), side="right")
        bounds = np.unique(np.r_[0, cuts, np.arange(_SLICE_ROWS, len(series), _SLICE_ROWS), len(series)])
        # numpy and polars release the GIL in their loops, so slices sign in parallel on every core.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            return np.concatenate(list(pool.map(lambda ab: _sign(series[ab[0]:ab[1]]), zip(bounds[:-1], bounds[1:]))))
    return _sign(series)


def _sign(series: pl.Series) -> np.ndarray:
    array = normalise(series).to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0]:offsets[-1]] if data_buffer else np.zeros(0, np.uint8)
    offsets = offsets - offsets[0]
    n, k = len(array), SHINGLE_BYTES
    lengths = np.diff(offsets)
    # Per bin, _TOP minus the smallest hash remainder that fell in it: a maximum, so that the zeros of
    # a fresh array mean "empty" (no fill pass). Row n is a spare for windows that cross two texts.
    out = np.zeros((n + 1) * NUM_BINS, dtype=np.uint32)
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
        # int32 indices: a slice holds at most _SLICE_ROWS texts, so (n + 1) * NUM_BINS fits.
        index = np.repeat(np.arange(0, n * NUM_BINS, NUM_BINS, dtype=np.int32), lengths)[:windows]
        index += (h >> _BIN_SHIFT).view(np.int32)
        # A window starting less than k bytes before a text's end crosses into the next text.
        crossing = (offsets[1:, None] - np.arange(1, k)).ravel()
        index[crossing[(crossing >= 0) & (crossing < windows)]] = n * NUM_BINS
        # The minimum is taken on every bit below the bin's, so ties between different shingles are rare.
        np.maximum.at(out, index, _TOP - (h & np.uint32(_TOP - 1)))
    sig = out[:n * NUM_BINS].reshape(n, NUM_BINS)
    short = np.flatnonzero(lengths < k)
    if len(short):  # texts shorter than one shingle: the whole text is their only shingle
        for row in short:
            value = _fmix32(np.array([_fnv(data[offsets[row]:offsets[row + 1]])], dtype=np.uint32))[0]
            sig[row, value >> _BIN_SHIFT] = _TOP - (value & np.uint32(_TOP - 1))
    return _pack(sig)


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


def _pack(sig: np.ndarray) -> np.ndarray:
    """Each bin to VALUE_BITS bits, 0 for an empty bin and 1.._LEVELS for a minimum (from its low 16
    bits, which are uniform even though the minimum itself is small); _PER_BYTE neighbouring bins to
    a byte (bins stay in order, so a band of bins is a run of bytes)."""
    levels = ((sig & np.uint32(0xFFFF)) * np.uint32(_LEVELS) >> np.uint32(16)).astype(np.uint8) + np.uint8(1)
    levels *= (sig != 0).view(np.uint8)
    levels = levels.reshape(len(sig), SIGNATURE_BYTES, _PER_BYTE)
    packed = levels[:, :, 0].copy()
    for j in range(1, _PER_BYTE):
        packed |= levels[:, :, j] << np.uint8(j * VALUE_BITS)
    return packed


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of rows of two packed signature arrays of one shape (pairwise).

    Bins empty in both texts say nothing and are left out (the one-permutation estimator of Li, Owen
    and Zhang 2012); a bin filled in one text only holds a shingle of the union that is not shared.
    Of the bins filled in both, matches are corrected for the 1 in _LEVELS that agree by chance."""
    mask = np.uint8((1 << VALUE_BITS) - 1)
    both = np.zeros(len(a), dtype=np.int32)
    either = np.zeros(len(a), dtype=np.int32)
    equal = np.zeros(len(a), dtype=np.int32)
    for j in range(_PER_BYTE):
        shift = np.uint8(j * VALUE_BITS)
        va, vb = (a >> shift) & mask, (b >> shift) & mask
        filled_a, filled_b = va != 0, vb != 0
        both += (filled_a & filled_b).sum(axis=1, dtype=np.int32)
        either += (filled_a | filled_b).sum(axis=1, dtype=np.int32)
        equal += ((va == vb) & filled_a).sum(axis=1, dtype=np.int32)
    shared = np.maximum(equal - both * _CHANCE, 0) / (1 - _CHANCE)
    return shared / np.maximum(either, 1)


def band_layout(threshold: float, num_bins: int = NUM_BINS) -> tuple[int, int]:
    """(bands, rows) whose LSH threshold (1/b)^(1/r) sits a little below `threshold`, for recall.

    Judged on the chance that a bin agrees (J + (1 - J) * chance, as b-bit values also agree by
    chance); rows are whole bytes of the packed signature."""
    target = max(threshold - 0.1, 0.05)
    target = target + (1 - target) * _CHANCE
    options = [(b, num_bins // b) for b in range(1, num_bins + 1)
               if num_bins % b == 0 and (num_bins // b) % _PER_BYTE == 0 and num_bins // b >= _MIN_ROWS]
    return min(options, key=lambda br: abs((1 / br[0]) ** (1 / br[1]) - target))


def cluster_signatures(sig: np.ndarray, threshold: float) -> NearDuplicates:
    """Cluster rows (packed signatures from `signatures`) whose estimated Jaccard similarity is at
    least `threshold` + MARGIN (at most 1); the earliest row of a cluster represents it (landing
    order decides which copy is kept)."""
    n = len(sig)
    if n < 2:
        return NearDuplicates(np.arange(n), 0)
    bands, rows = band_layout(threshold)
    width = rows // _PER_BYTE  # bytes per band
    multipliers = np.random.default_rng(7).integers(1, 2**63, size=width, dtype=np.uint64) | np.uint64(1)
    candidates = []
    for band in range(bands):
        band_bytes = sig[:, band * width:(band + 1) * width]
        with np.errstate(over="ignore"):
            keys = (band_bytes.astype(np.uint64) * multipliers).sum(axis=1)
        # A band with no shingle at all would put every short text in one bucket: such rows sit it out.
        blank = np.flatnonzero(~band_bytes.any(axis=1))
        keys[blank] = blank.astype(np.uint64) | np.uint64(1 << 63)
        order = np.argsort(keys, kind="stable")  # stable: each bucket lists its members in row order
        sorted_keys = keys[order]
        starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        first = order[np.flatnonzero(starts)][np.cumsum(starts) - 1]  # each row's bucket head
        member = first != order
        candidates.append(np.stack([first[member], order[member]], axis=1))
    pairs = np.unique(np.concatenate(candidates), axis=0)
    cutoff = min(threshold + MARGIN, 1.0)
    similar = np.concatenate([similarity(sig[chunk[:, 0]], sig[chunk[:, 1]]) >= cutoff
                              for chunk in np.array_split(pairs, max(1, -(-len(pairs) // _PAIRS_PER_CHUNK)))])
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
    """Cluster texts whose estimated Jaccard similarity of normalised character 5-grams is at least `threshold`."""
    return cluster_signatures(signatures(texts), threshold)
