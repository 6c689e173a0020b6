"""The batch hashing decontamination looks with first (instruct/filters/ngramhash.py): every n-gram of every
text, hashed as ``dedup.polynomial`` hashes its bytes, and a hash set that finds exactly its members."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct.filters.dedup import Powers, polynomial
from instruct.filters.ngramhash import HashSet, ngram_spans

WORDS = st.sampled_from([b"a", b"bb", b"the", b"caf\xc3\xa9", b"x1", b"zebra"])
TEXTS = st.lists(st.lists(WORDS, max_size=12).map(b" ".join), max_size=8)  # empty texts among them


@settings(max_examples=200, deadline=None)
@given(texts=TEXTS, n=st.integers(1, 5))
def test_every_ngram_of_every_text_in_order_and_hashed_like_its_bytes(texts, n):
    spans = ngram_spans(texts, n, Powers())
    expected = [(number, b" ".join(words[i:i + n])) for number, text in enumerate(texts)
                for words in [text.split()] for i in range(len(words) - n + 1)]
    assert [(int(t), spans.text(at).encode()) for at, t in enumerate(spans.texts)] == expected
    assert spans.hashes.tolist() == [polynomial(gram) for _, gram in expected]


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.integers(0, 2 ** 64 - 1), max_size=50), others=st.lists(st.integers(0, 2 ** 64 - 1),
                                                                                max_size=50))
def test_the_hash_set_finds_exactly_its_members(keys, others):
    members = HashSet(np.array(keys, dtype=np.uint64))
    probe = np.array(others + keys[::2], dtype=np.uint64)
    assert members.members(probe).tolist() == np.flatnonzero(np.isin(probe, np.array(keys, dtype=np.uint64))).tolist()
    assert len(members) == len(set(keys))
