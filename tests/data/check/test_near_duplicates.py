"""The MinHash/LSH near-duplicate finder against brute-force Jaccard similarity."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from tunesmith.data.check.near_duplicates import (
    band_rows,
    jaccard,
    near_duplicates,
    near_matches,
    normalize,
    shingles,
    similar_pairs,
)

THRESHOLD = 0.85


def edited(text: str, rng: random.Random, edits: int) -> str:
    words = text.split()
    for _ in range(edits):
        position = rng.randrange(len(words))
        action = rng.choice(["drop", "change", "add"])
        if action == "drop" and len(words) > 3:
            del words[position]
        elif action == "change":
            words[position] = words[position] + "x"
        else:
            words.insert(position, rng.choice(["very", "quite", "the", "so"]))
    return " ".join(words)


@pytest.fixture(scope="module")
def random_rows(shared_data) -> list[str]:
    """~200 real alpaca rows plus edited copies of some of them (0 to 4 word edits: similarities on both sides
    of the threshold)."""
    rng = random.Random(7)
    lines = (shared_data / "alpaca_2k.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in rng.sample(lines, 140)]
    texts = [f"{row['instruction']} {row['input']} {row['output']}" for row in rows]
    copies = [edited(rng.choice(texts), rng, rng.randrange(0, 5)) for _ in range(60)]
    mixed = texts + copies
    rng.shuffle(mixed)
    return mixed


def brute_force(texts: list[str]) -> dict[tuple[int, int], float]:
    sets = [shingles(text) for text in texts]
    return {(i, j): jaccard(sets[i], sets[j]) for i, j in itertools.combinations(range(len(texts)), 2)
            if sets[i] and sets[j]}


def test_similar_pairs_match_brute_force(random_rows):
    truth = brute_force(random_rows)
    above = {pair for pair, similarity in truth.items() if similarity >= THRESHOLD}
    assert len(above) >= 20  # the fixture really has near duplicates to find
    found = {(i, j): similarity for i, j, similarity in similar_pairs(random_rows, THRESHOLD)}
    assert len(above & set(found)) / len(above) >= 0.95
    assert all(truth[pair] >= THRESHOLD - 0.1 for pair in found)
    assert all(abs(found[pair] - truth[pair]) < 1e-12 for pair in found)  # exact Jaccard, not an estimate


def test_near_duplicates_is_the_greedy_keep_first_of_brute_force(random_rows):
    truth = brute_force(random_rows)
    expected = {}
    for j in range(len(random_rows)):
        kept_matches = [i for i in range(j) if i not in expected and truth.get((i, j), 0) >= THRESHOLD]
        if kept_matches:
            expected[j] = kept_matches
    found = near_duplicates(random_rows, THRESHOLD)
    assert set(found) == set(expected)
    assert all(found[j][0] in expected[j] for j in found)


def test_near_matches_find_queries_near_the_corpus(random_rows):
    corpus, queries = random_rows[:100], random_rows[100:]
    sets = [shingles(text) for text in random_rows]
    expected = {q for q in range(len(queries))
                if any(jaccard(sets[100 + q], sets[c]) >= THRESHOLD for c in range(100))}
    found = near_matches(queries, corpus, THRESHOLD)
    assert set(found) == expected and expected
    assert all(jaccard(sets[100 + q], sets[c]) == similarity >= THRESHOLD for q, (c, similarity) in found.items())


def test_normalization_and_short_texts():
    assert normalize("  Hello,\tWORLD!!  It's\n me. ") == "hello world it s me"
    assert shingles("Hi there") == {("hi", "there")}
    assert shingles("...") == set()
    found = near_duplicates(["Hi there!", "hi, THERE", "...", "!!!", "bye now"], THRESHOLD)
    assert found == {1: (0, 1.0)}  # texts without words are never near anything


def test_identical_texts_point_at_the_first_kept_row():
    texts = ["a b c d e f g h"] * 5 + ["a b c d e f g h i"]
    found = near_duplicates(texts, 0.8)
    assert {j: i for j, (i, _) in found.items()} == {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}


def test_bands_reach_the_recall_target_at_the_threshold():
    for threshold in (0.5, 0.7, 0.85, 0.95):
        r = band_rows(threshold)
        bands = 128 // r
        assert 1 - (1 - threshold**r) ** bands >= 0.999
        assert r == 128 or 1 - (1 - threshold ** (r + 1)) ** (128 // (r + 1)) < 0.999
