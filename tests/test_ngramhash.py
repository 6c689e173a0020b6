"""The batch hashing decontamination looks with first (instruct/filters/ngramhash.py): every n-gram of every
text, hashed as ``polyhash.polynomial`` hashes its bytes, and a hash set that finds exactly its members."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct.filters.polyhash import Powers, polynomial
from instruct.filters.ngramhash import HashSet, ngram_spans, sizes

WORDS = st.sampled_from([b"a", b"bb", b"the", b"caf\xc3\xa9", b"x1", b"zebra"])
TEXTS = st.lists(st.lists(WORDS, max_size=7).map(b" ".join), max_size=3)  # empty texts among them


@settings(max_examples=200, deadline=None)
@given(threads=st.lists(TEXTS, max_size=6), n=st.integers(1, 5))
def test_every_ngram_of_every_thread_across_its_texts_in_order_and_hashed_like_its_bytes(threads, n):
    spans = ngram_spans(threads, n, Powers())
    expected = [(number, b" ".join(words[i:i + n])) for number, texts in enumerate(threads)
                for words in [b" ".join(texts).split()] for i in range(len(words) - n + 1)]
    assert [(int(t), spans.text(at).encode()) for at, t in enumerate(spans.threads)] == expected
    assert spans.hashes.tolist() == [polynomial(gram) for _, gram in expected]
    assert sizes(threads).tolist() == [sum(len(text) + 1 for text in texts) for texts in threads]


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.integers(0, 2 ** 64 - 1), max_size=50), others=st.lists(st.integers(0, 2 ** 64 - 1),
                                                                                max_size=50))
def test_the_hash_set_finds_exactly_its_members(keys, others):
    members = HashSet(np.array(keys, dtype=np.uint64))
    probe = np.array(others + keys[::2], dtype=np.uint64)
    assert members.members(probe).tolist() == np.flatnonzero(np.isin(probe, np.array(keys, dtype=np.uint64))).tolist()
    assert len(members) == len(set(keys))
