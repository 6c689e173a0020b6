"""TF-IDF vectors of short texts with the cluster's IDF, and the cosine of every pair of texts.

Terms are lowercased content words (``text.content_words``), the same units ``ClusterStats`` counts, so a
term's weight is its IDF in the cluster. Posts are short, so a term counts once per text (binary TF).
Vectors are L2-normalised, so a dot product is a cosine.
"""

from __future__ import annotations

import math

import numpy as np

from instruct.text import ClusterStats, post_words

# Bound on the term-sharing pairs expanded at once by `pair_similarity` (3 int64/float64 arrays each).
_PAIRS_PER_BATCH = 1 << 21


def terms(text: str) -> list[str]:
    """The distinct lowercased content words of a text, in order of first use."""
    return list(post_words(text).content_lower)


def _weights(text_terms: list[str], stats: ClusterStats) -> list[float]:
    idf = stats.idfs(text_terms)
    norm = math.sqrt(math.fsum(w * w for w in idf))
    return [w / norm for w in idf]


def tfidf_vectors(texts: list[str], stats: ClusterStats) -> list[dict[str, float]]:
    """One unit vector per text, as term → weight (empty for a text without content words); sparse, for a
    handful of texts such as one conversation (plain dicts: ~4x cheaper than numpy arrays at that size)."""
    vectors = []
    for text in texts:
        text_terms = terms(text)
        vectors.append(dict(zip(text_terms, _weights(text_terms, stats))) if text_terms else {})
    return vectors


def pair_similarity(texts: list[str], stats: ClusterStats) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of texts that shares a term, with its cosine and number of shared terms.

    Sparse: only pairs that share a term are ever touched (an inverted index expanded with numpy) and they
    are summed per pair, never in an ``n x n`` matrix, so the cost follows the number of term-sharing pairs
    (a dense 1024 x 1024 accumulation cost ~20 ms per chunk). Sums run in a fixed order in float64, so the
    result is the same bit for bit in any process.

    Args:
        texts: the texts.
        stats: the cluster statistics the IDF comes from.

    Returns:
        ``(first, second, cosine, shared)``: index arrays with ``first < second``, ascending by
        ``(first, second)``, and the pair's cosine and shared-term count.
    """
    n = len(texts)
    docs, term_ids, weights = [], [], []
    vocabulary: dict[str, int] = {}
    for doc, text in enumerate(texts):
        text_terms = terms(text)
        for term, weight in zip(text_terms, _weights(text_terms, stats)):
            docs.append(doc)
            term_ids.append(vocabulary.setdefault(term, len(vocabulary)))
            weights.append(weight)
    docs_a, terms_a, weights_a = np.array(docs, np.int64), np.array(term_ids, np.int64), np.array(weights)
    order = np.lexsort((docs_a, terms_a))                     # postings: by term, then by text
    docs_a, terms_a, weights_a = docs_a[order], terms_a[order], weights_a[order]
    starts = np.flatnonzero(np.r_[True, terms_a[1:] != terms_a[:-1]]) if len(terms_a) else np.zeros(0, np.int64)
    sizes = np.diff(np.r_[starts, len(terms_a)])
    starts, sizes = starts[sizes >= 2], sizes[sizes >= 2]     # a term of one text pairs nothing
    keys, products = [np.zeros(0, np.int64)], [np.zeros(0)]
    batch_of = np.cumsum(sizes * sizes) // _PAIRS_PER_BATCH
    for batch in np.unique(batch_of):
        b_starts, b_sizes = starts[batch_of == batch], sizes[batch_of == batch]
        # Every posting of these terms, each paired with every posting of its own term.
        group_start = np.repeat(b_starts, b_sizes)
        members = group_start + np.arange(b_sizes.sum()) - np.repeat(np.cumsum(b_sizes) - b_sizes, b_sizes)
        fan = np.repeat(b_sizes, b_sizes)
        left = np.repeat(members, fan)
        right = np.repeat(group_start, fan) + np.arange(len(left)) - np.repeat(np.cumsum(fan) - fan, fan)
        keep = docs_a[left] < docs_a[right]                    # each unordered pair once, no text with itself
        left, right = left[keep], right[keep]
        keys.append(docs_a[left] * n + docs_a[right])
        products.append(weights_a[left] * weights_a[right])
    pairs, which = np.unique(np.concatenate(keys), return_inverse=True)
    cosine = np.bincount(which, weights=np.concatenate(products), minlength=len(pairs))
    shared = np.bincount(which, minlength=len(pairs))
    return pairs // max(n, 1), pairs % max(n, 1), cosine, shared
