"""TF-IDF vectors of short texts with the cluster's IDF (summarization ranks messages by them).

Terms are lowercased content words (``text.content_words``), the same units ``ClusterStats`` counts, so a
term's weight is its IDF in the cluster. Posts are short, so a term counts once per text (binary TF).
Vectors are L2-normalised, so a dot product is a cosine.
"""

from __future__ import annotations

import math

from instruct.text import ClusterStats, post_words

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
