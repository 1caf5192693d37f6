"""Near-duplicate detection: MinHash signatures over character shingles, banded LSH, verification.

Exact de-duplication misses the copies real corpora are full of (a changed date, a signature, a
re-wrapped paragraph). Two texts are near-duplicates when the Jaccard similarity of their sets of
character 5-grams (lower-cased, whitespace collapsed) reaches the threshold. MinHash estimates it
from 128 hash minima per text; LSH bands those signatures so only likely pairs are compared.

Everything is vectorised in numpy and seeded, so the same texts always give the same clusters
(Python's own `hash` is salted per process and is not used).
"""

from dataclasses import dataclass

import numpy as np

SHINGLE_CHARS = 5
NUM_PERM = 128
_MASK32 = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class NearDuplicates:
    cluster: np.ndarray  # (n,) index of each text's cluster representative (its first member)
    pairs_checked: int  # candidate pairs verified after LSH

    @property
    def duplicates(self) -> np.ndarray:
        """Boolean mask of texts that are not their cluster's first member."""
        return self.cluster != np.arange(len(self.cluster))


def shingle_hashes(text: str, k: int = SHINGLE_CHARS) -> np.ndarray:
    """Distinct 64-bit hashes of the text's k-byte windows (UTF-8, lower-cased, whitespace collapsed)."""
    data = np.frombuffer(" ".join(text.lower().split()).encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    if len(data) < k:
        data = np.pad(data, (0, k - len(data)))
    windows = np.lib.stride_tricks.sliding_window_view(data, k)
    # Polynomial hash of each window; uint64 arithmetic wraps, which is what we want.
    powers = np.array([1099511628211 ** i % 2**64 for i in range(k)], dtype=np.uint64)
    with np.errstate(over="ignore"):
        return np.unique(windows @ powers)


def signatures(texts: list[str], num_perm: int = NUM_PERM, seed: int = 1) -> np.ndarray:
    """(n, num_perm) MinHash signatures, uint32. Permutations are multiply-shift hashes."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    with np.errstate(over="ignore"):
        for row, text in enumerate(texts):
            shingles = shingle_hashes(text)
            out[row] = (((a[:, None] * shingles[None, :] + b[:, None]) >> np.uint64(32)) & _MASK32).min(axis=1)
    return out


def band_layout(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) whose LSH threshold (1/b)^(1/r) sits a little below `threshold`, for recall."""
    target = max(threshold - 0.1, 0.05)
    options = [(b, num_perm // b) for b in range(1, num_perm + 1) if num_perm % b == 0]
    return min(options, key=lambda br: abs((1 / br[0]) ** (1 / br[1]) - target))


def find_near_duplicates(texts: list[str], threshold: float, num_perm: int = NUM_PERM) -> NearDuplicates:
    """Cluster texts whose estimated Jaccard similarity is at least `threshold` (union-find)."""
    n = len(texts)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n < 2:
        return NearDuplicates(parent.copy(), 0)
    sig = signatures(texts, num_perm)
    bands, rows = band_layout(threshold, num_perm)
    checked, seen = 0, set()
    for band in range(bands):
        keys = np.ascontiguousarray(sig[:, band * rows:(band + 1) * rows]).view(np.dtype((np.void, 4 * rows))).ravel()
        _, bucket, counts = np.unique(keys, return_inverse=True, return_counts=True)
        for members in _buckets(bucket, counts):
            first = members[0]
            for other in members[1:]:
                if (first, other) in seen:
                    continue
                seen.add((first, other))
                checked += 1
                # Verify with the full signature: banding only proposes candidates.
                if np.mean(sig[first] == sig[other]) >= threshold:
                    ra, rb = root(first), root(other)
                    parent[max(ra, rb)] = min(ra, rb)  # the earliest text represents the cluster
    return NearDuplicates(np.array([root(i) for i in range(n)]), checked)


def _buckets(bucket: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    shared = np.flatnonzero(counts > 1)
    if not len(shared):
        return []
    order = np.argsort(bucket, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return [order[starts[b]:starts[b] + counts[b]] for b in shared]
