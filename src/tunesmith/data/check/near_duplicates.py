"""Near-duplicate texts: word 3-gram Jaccard similarity, found with MinHash + LSH banding, confirmed exactly.

Texts are normalized (`tunesmith.text.normalize_text` without punctuation: case-folded, punctuation removed,
whitespace collapsed) and cut into word 3-gram shingles
(a text of one or two words is one shingle). Two texts are near duplicates when the Jaccard similarity of their
shingle sets is at least the threshold (``data.check.near_duplicate_threshold``).

Comparing every pair is quadratic, so candidates come from locality-sensitive hashing: each text gets a MinHash
signature (the minimum of `NUM_PERMUTATIONS` hash functions over its shingles; two signatures agree in one
position with probability equal to the Jaccard similarity), signatures are cut into bands of ``r`` positions,
and texts that agree on a whole band become candidates. ``r`` is chosen so that a pair *at* the threshold is a
candidate with probability ≥ `MIN_RECALL`; every candidate is then checked with the exact Jaccard similarity,
so no reported pair is below the threshold.

Why hand-written: datasketch is not a dependency, and numpy does the heavy part (one vectorized pass per hash
function over every shingle). Measured on this project's shared 2-core CPU (`near_duplicates`, threshold 0.85):
100,000 alpaca rows (50 numbered variations of each of the 2,000 rows of alpaca_2k: 93,198 flagged) in 10-13 s;
100,000 rows that each join an alpaca instruction with two random alpaca outputs (many pairs share two thirds
of their text, so ~800,000 candidates need the exact check) in 18-20 s. Signatures take about 2 s of that.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tunesmith.text import normalize_text

SHINGLE_WORDS = 3
NUM_PERMUTATIONS = 128
MIN_RECALL = 0.999
"""Probability that a pair whose similarity equals the threshold becomes a candidate (higher above it)."""

_SEED = 20240601


def normalize(text: str) -> str:
    """What shingles are cut from: `normalize_text` with punctuation replaced by spaces."""
    return normalize_text(text, keep_punctuation=False)


def shingles(text: str) -> set[tuple[str, ...]]:
    """The word 3-gram shingles of ``text`` after `normalize` (the reference definition; the finder hashes them)."""
    words = normalize(text).split()
    if len(words) < SHINGLE_WORDS:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def jaccard(a: set | frozenset, b: set | frozenset) -> float:
    if not a and not b:
        return 0.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)


def band_rows(threshold: float, permutations: int = NUM_PERMUTATIONS) -> int:
    """Signature positions per band: the largest ``r`` whose S-curve still makes a pair at ``threshold`` a
    candidate with probability `MIN_RECALL` (a larger ``r`` means fewer false candidates to check)."""
    best = 1
    for rows in range(1, permutations + 1):
        bands = permutations // rows
        if 1.0 - (1.0 - threshold**rows) ** bands >= MIN_RECALL:
            best = rows
    return best


class ShingleIndex:
    """Hashed shingle sets and MinHash signatures of many texts."""

    def __init__(self, texts: Sequence[str]):
        self.size = len(texts)
        hashes, counts = _hashed_shingles(texts)
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._hashes = hashes
        self.has_shingles = counts > 0
        self._sets: dict[int, frozenset] = {}
        # Texts with the same shingle set are found by hashing the set, not by LSH: a thousand copies of one
        # text would otherwise put a million pairs in one bucket.
        self.first_same: np.ndarray = self._first_of_same_set()
        self.signatures = _minhash(hashes, self._offsets, counts)

    def shingle_set(self, index: int) -> frozenset:
        cached = self._sets.get(index)
        if cached is None:
            cached = frozenset(self._hashes[self._offsets[index] : self._offsets[index + 1]].tolist())
            self._sets[index] = cached
        return cached

    def similarity(self, i: int, j: int) -> float:
        return jaccard(self.shingle_set(i), self.shingle_set(j))

    def _first_of_same_set(self) -> np.ndarray:
        first = np.arange(self.size)
        seen: dict[bytes, int] = {}
        for index in range(self.size):
            if not self.has_shingles[index]:
                continue
            key = np.sort(self._hashes[self._offsets[index] : self._offsets[index + 1]]).tobytes()
            first[index] = seen.setdefault(key, index)
        return first

    def candidate_groups(self, threshold: float, rows: np.ndarray) -> tuple[list[np.ndarray], dict[int, list[int]]]:
        """Groups of ``rows`` (ascending indices) that agree on a whole band, and for each row in some group the
        groups it is in. Rows alone in every band are left out: they have no candidate."""
        r = band_rows(threshold)
        rng = np.random.default_rng(_SEED + 1)
        multipliers = rng.integers(1, 2**63, size=r, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        groups: list[np.ndarray] = []
        groups_of: dict[int, list[int]] = {}
        signatures = self.signatures[rows]
        for band in range(NUM_PERMUTATIONS // r):
            block = signatures[:, band * r : (band + 1) * r].astype(np.uint64)
            keys = (block * multipliers).sum(axis=1, dtype=np.uint64)  # wraps: a collision only adds a candidate
            order = np.argsort(keys, kind="stable")  # stable: members of a group stay in ascending index order
            sorted_keys = keys[order]
            starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
            ends = np.concatenate([starts[1:], [len(keys)]])
            for start, end in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
                members = rows[order[start:end]]
                for member in members.tolist():
                    groups_of.setdefault(member, []).append(len(groups))
                groups.append(members)
        return groups, groups_of


def near_duplicates(texts: Sequence[str], threshold: float) -> dict[int, tuple[int, float]]:
    """Texts that are near an earlier text that is itself kept: ``{index: (kept index, similarity)}``.

    Greedy in text order, as deduplication keeps the first row of a group: a text is flagged when some earlier
    unflagged text has similarity ≥ ``threshold`` with it; texts with no words are never near anything.
    """
    index = ShingleIndex(texts)
    found: dict[int, tuple[int, float]] = {}
    representatives = np.flatnonzero(index.has_shingles & (index.first_same == np.arange(index.size)))
    groups, groups_of = index.candidate_groups(threshold, representatives)
    for j in range(index.size):
        if not index.has_shingles[j]:
            continue
        same = int(index.first_same[j])
        if same != j:  # the same shingle set as an earlier text: near whatever that one is near, or near it
            found[j] = found.get(same, (same, 1.0))
            continue
        match = _first_match(index, j, groups, groups_of.get(j, ()), threshold, lambda i: i < j and i not in found)
        if match is not None:
            found[j] = match
    return found


def near_matches(queries: Sequence[str], corpus: Sequence[str], threshold: float) -> dict[int, tuple[int, float]]:
    """Queries near some corpus text: ``{query index: (corpus index, similarity)}`` (the first match found)."""
    index = ShingleIndex([*corpus, *queries])
    size = len(corpus)
    found: dict[int, tuple[int, float]] = {}
    # A query with the same shingle set as an earlier text needs no search: the corpus comes first, so "earlier"
    # is a corpus text (a match at 1.0) or an earlier query (the same answer).
    representatives = np.flatnonzero(index.has_shingles & (index.first_same == np.arange(index.size)))
    groups, groups_of = index.candidate_groups(threshold, representatives)
    for q in range(size, index.size):
        if not index.has_shingles[q]:
            continue
        same = int(index.first_same[q])
        if same < size:
            match = (same, 1.0)
        elif same != q:
            match = found.get(same - size)
        else:
            match = _first_match(index, q, groups, groups_of.get(q, ()), threshold, lambda i: i < size)
        if match is not None:
            found[q - size] = match
    return found


def similar_pairs(texts: Sequence[str], threshold: float) -> list[tuple[int, int, float]]:
    """Every pair ``(i, j, similarity)`` with ``i < j`` and similarity ≥ ``threshold`` (LSH candidates,
    confirmed exactly). Quadratic in the size of groups of identical texts: meant for tests and small inputs."""
    index = ShingleIndex(texts)
    groups, _ = index.candidate_groups(threshold, np.flatnonzero(index.has_shingles))
    pairs = set()
    for members in groups:
        members = members.tolist()
        for a, i in enumerate(members):
            for j in members[a + 1 :]:
                pairs.add((i, j))
    result = [(i, j, index.similarity(i, j)) for i, j in sorted(pairs)]
    return [(i, j, s) for i, j, s in result if s >= threshold]


def _first_match(index: ShingleIndex, j: int, groups, group_ids, threshold: float, allowed):
    tried: set[int] = set()
    for group in group_ids:
        for i in groups[group].tolist():
            if i == j or i in tried or not allowed(i):
                continue
            tried.add(i)
            similarity = index.similarity(i, j)
            if similarity >= threshold:
                return i, similarity
    return None


def _hashed_shingles(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """All shingles of all texts as one flat uint64 array (text after text) and the shingle count of each text.

    Words become ids (`pandas.factorize`), and a shingle's hash is computed from its three ids in numpy, so
    the per-shingle work never runs in Python. Deterministic: no dependence on Python's per-process str hash.
    """
    words: list[str] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for position, text in enumerate(texts):
        text_words = normalize(text).split()
        lengths[position] = len(text_words)
        words += text_words
        words += ("", "")  # two pads after every text ("" is never a word): short texts fill their shingle
    # pandas.factorize hashes the strings in C: 3x faster than a Python dict of word ids (measured, 6M words).
    codes, _ = pd.factorize(np.asarray(words, dtype=object))
    flat = codes.astype(np.uint64)
    text_starts = np.cumsum(lengths + 2) - (lengths + 2)
    counts = np.where(lengths >= SHINGLE_WORDS, lengths - SHINGLE_WORDS + 1, np.minimum(lengths, 1))
    shingle_starts = np.cumsum(counts) - counts
    positions = np.repeat(text_starts, counts) + (np.arange(int(counts.sum())) - np.repeat(shingle_starts, counts))
    mixed = _mix(flat[positions] * np.uint64(0x9E3779B97F4A7C15)
                 + _mix(flat[positions + 1] * np.uint64(0xC2B2AE3D27D4EB4F) + _mix(flat[positions + 2])))
    return mixed, counts


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit flips about half the output bits."""
    z = values ^ (values >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _minhash(hashes: np.ndarray, offsets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(texts, NUM_PERMUTATIONS)`` uint32 MinHash signatures; texts without shingles get all-ones rows.

    Hash function k is multiply-add-shift, ``(a_k * x + b_k) >> 32`` with 64-bit wrap-around, over shingle
    hashes that are already well mixed; one vectorized pass per function, minimum per text by `reduceat`.
    """
    signatures = np.full((len(counts), NUM_PERMUTATIONS), np.iinfo(np.uint32).max, dtype=np.uint32)
    present = np.flatnonzero(counts > 0)
    if not len(present):
        return signatures
    rng = np.random.default_rng(_SEED)
    a = rng.integers(1, 2**63, size=NUM_PERMUTATIONS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=NUM_PERMUTATIONS, dtype=np.uint64)
    buffer = np.empty_like(hashes)
    starts = offsets[present]
    for k in range(NUM_PERMUTATIONS):
        np.multiply(hashes, a[k], out=buffer)
        np.add(buffer, b[k], out=buffer)
        np.right_shift(buffer, np.uint64(32), out=buffer)
        signatures[present, k] = np.minimum.reduceat(buffer, starts)
    return signatures
