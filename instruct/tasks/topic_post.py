"""Topic post: write a post about a topic; the response is the real post.

The topic is what a person would call the post's subject: its hashtags (as written, with ``#``), else its
best keyphrase — a run of consecutive content words (``text.phrase_runs``: no stopword, contraction, number,
handle or link; shouting lowercased, names keep their capital), scored by how topical its words are:

- a word at or above ``max_zipf`` in general English (wordfreq) is filler ("time", "people") and is never
  part of a topic;
- a known word below that scores 1, a rare or unknown capitalised word (a name) 0.8, a rare or unknown
  lowercase word (slang, a typo, "samiiii") 0.5;
- a phrase scores the mean of its words, times ``1 + 0.3 * (words - 1)`` when it is a whole run ("Social
  Security", "creature comforts"), ``1 + 0.15 * (words - 1)`` when it is cut out of a longer one;
- a phrase that reads like a clause, not a noun phrase (``clause_like``: it ends in a lowercase word that
  cannot be a noun, by lemminflect's lexicon or its -ly/-ed/-ing form, or has an earlier one that can only
  be a verb or an adverb: "Hardman recorded", "anger translates", "voices overwhelmingly dominate") scores
  0.6 times as much, and one that repeats a word is no phrase;
- ties go to the phrase rarer in the cluster (mean IDF), then to the earlier one.

This is the candidate rule of RAKE/YAKE (runs between stopwords) with a frequency band in place of YAKE's
per-document statistics, which are far too slow for every post; README.md gives the measured comparison. A topic is never
just the post's opening words — "write about Trade talks" for a post beginning "Trade talks …" teaches
copying — so such a phrase is passed over.

With an LLM responder covering ``topic_post`` the topic comes from the model instead (instruction
backtranslation, responders/backtranslation.py): it is asked TOPIC_QUESTION about the real post, its answer
fills the drawn template's ``{topic}``, and the response stays the post (``meta.instruction_source: llm``,
``response_source: data``).
"""

from __future__ import annotations

from instruct.records import Row, Thread
from instruct.responders.backtranslation import backtranslation
from instruct.seeding import Draws
from instruct.tasks.base import Task, TaskContext, anchor_post_words
from instruct.templates import Slots
from instruct.text import (NOT_PROSE, RARE_ZIPF, ClusterStats, filler_words, hashtags, join_words, phrase_runs,
                           word_classes, words, zipf)

KNOWN_ZIPF = 3.0  # wordfreq's small list holds every word at or above this
EDGE_PENALTY = 0.6
NOT_A_HEAD = frozenset({"VERB", "ADJ", "ADV", "AUX"})  # a word that can only be these ends no noun phrase
NOT_A_MODIFIER = frozenset({"VERB", "ADV", "AUX"})    # ... and one that can only be these is in none
# What the LLM is asked under instruction backtranslation; the post follows it.
TOPIC_QUESTION = ("What is the topic of this social-media post? Answer with a short noun phrase only, "
                  "no sentence.\n\nPost:\n")


def clause_like(window: list[tuple[str, str]]) -> bool:
    """Whether a phrase (its words as (written, lowercased) pairs) is a clause or a bare modifier, not a topic.
    A topic is a noun phrase, and an English noun phrase ends in a noun. So a phrase is clause-like when it ends
    in a word that cannot be a noun, by lemminflect's lexicon ("anger translates", "remains steadfast",
    "mundane") or by its form, an adverb or a verb form ("Hardman recorded", "moment thinking"), or when an
    earlier word can only be a verb or an adverb ("voices overwhelmingly dominate", "fruits include
    blackberries", "advocated abolishing democracy"). Only lowercase words are judged (a name is not), and an
    -ing word before the last is not: as a modifier it is part of many a topic ("reasoning powers", "perpetual
    licensing models")."""
    def ends(pair: tuple[str, str], endings: tuple[str, ...]) -> bool:
        return pair[0].islower() and len(pair[1]) > 4 and pair[1].endswith(endings)

    def only(pair: tuple[str, str], classes: frozenset[str]) -> bool:
        known = word_classes(pair[1]) if pair[0].islower() else frozenset()
        return bool(known) and known <= classes

    *before, last = window
    return (ends(window[0], ("ly",)) or ends(last, ("ly", "ed", "ing")) or only(last, NOT_A_HEAD)
            or any(only(pair, NOT_A_MODIFIER) for pair in before if not pair[1].endswith("ing")))


def prose_words(text: str) -> list[str]:
    """The words of a text, lowercased, without handles and links: a reply that starts with ``@someone``
    still opens with the first word after it."""
    return [w.lower() for w in words(NOT_PROSE.sub(" ", text))]


def is_opening(text: str, topic_words: list[str]) -> bool:
    """Whether the topic words, in any order, are exactly the text's first words."""
    lowered = [w.lower().lstrip("#") for w in topic_words]
    return sorted(lowered) == sorted(prose_words(text)[: len(topic_words)])


def word_score(written: str, lowered: str) -> float:
    frequency = zipf(lowered)
    if frequency >= KNOWN_ZIPF:
        return 1.0
    return 0.8 if written[:1].isupper() else 0.5


class TopicPostTask(Task):
    """Name a post's topic, ask for a post about it, answer with the post.

    Args:
        weight: relative chance of being drawn.
        max_words: at most this many hashtags, or words in the topic phrase.
        max_phrases: at most this many keyphrases name the topic (the count is uniform in
            1..min(max_phrases, candidates)); best first.
        max_zipf: words this frequent in general English (wordfreq Zipf scale) are filler, never topic words.
        min_words: posts with fewer words are declined.
    """

    template_file = "topic_post"
    slots = {"default": Slots.of("topic")}
    uses_stats = True

    bounds = {"max_words": (1, None), "max_phrases": (1, None), "max_zipf": (0, 8), "min_words": (1, None)}

    def __init__(self, weight: float = 1.0, max_words: int = 3, max_phrases: int = 1, max_zipf: float = 5.8,
                 min_words: int = 5):
        super().__init__(weight)
        if max_words < 1 or max_phrases < 1:
            raise ValueError("topic_post needs max_words >= 1 and max_phrases >= 1")
        if not RARE_ZIPF < max_zipf <= 8:
            raise ValueError("topic_post needs 0 < max_zipf <= 8")
        self.max_words = max_words
        self.max_phrases = max_phrases
        self.max_zipf = max_zipf
        self.min_words = min_words
        self._filler = filler_words(max_zipf)

    def _hashtag_topic(self, text: str) -> list[str] | None:
        tags = [f"#{tag}" for tag in hashtags(text)[: self.max_words]]
        return tags if tags and not is_opening(text, tags) else None

    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        # Cheap checks only: the phrase itself is found when the task is drawn (a post without one fails
        # there and goes to another task).
        analysis = anchor_post_words(thread, self.min_words)
        if isinstance(analysis, str):
            return analysis
        if not self.llm_answers and not analysis.has_content_words() and not hashtags(thread.anchor_post().text):
            return "no hashtag or content word"
        return None

    def phrases(self, text: str, stats: ClusterStats) -> list[tuple[str, ...]]:
        """The post's keyphrases, best first (see the module docstring), none of them its opening words."""
        scored = []
        opening = prose_words(text)
        for written, lowered, _ in phrase_runs(text):
            # Filler words split a run: "good morning Seattle" offers "Seattle".
            parts, part = [], []
            for pair in zip(written, lowered):
                if pair[1] in self._filler:
                    if part:
                        parts.append(part)
                    part = []
                else:
                    part.append(pair)
            if part:
                parts.append(part)
            whole = len(parts) == 1 and len(parts[0]) == len(written)
            for part, size in ((part, size) for part in parts for size in range(1, min(len(part), self.max_words) + 1)):
                for offset in range(len(part) - size + 1):
                    window = part[offset: offset + size]
                    phrase_written = tuple(w for w, _ in window)
                    phrase_lower = [l for _, l in window]
                    if sorted(phrase_lower) == sorted(opening[:size]):  # the post's opening words
                        continue
                    if len(set(phrase_lower)) < size:  # "rumors NHL Rumors"
                        continue
                    score = sum(word_score(w, l) for w, l in window) / size
                    if clause_like(window):
                        score *= EDGE_PENALTY
                    score *= 1 + (0.3 if whole and size == len(part) else 0.15) * (size - 1)
                    rarity = sum(stats.idfs(phrase_lower)) / size
                    scored.append((-round(score, 6), -round(rarity, 6), len(scored), phrase_written))
        scored.sort()
        best: list[tuple[str, ...]] = []
        for *_, phrase in scored:
            if phrase not in best:
                best.append(phrase)
        return best

    def topic(self, text: str, stats: ClusterStats, draws: Draws) -> list[str]:
        """The topic of a post: hashtags with ``#``, or its best keyphrase(s); empty if it has neither."""
        tags = self._hashtag_topic(text)
        if tags:
            return tags
        phrases = self.phrases(text, stats)
        if not phrases:
            return []
        count = draws.between(1, min(self.max_phrases, len(phrases)))
        return [" ".join(phrase) for phrase in phrases[:count]]

    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        text = thread.anchor_post().text
        if self.llm_answers:  # the model names the topic; the instruction is rendered from its answer
            template = draws.pick(self._templates["default"])
            row = self.row(thread, context, instruction="", response=text, template_id=template.id,
                           variant="default")
            row.backtranslation = backtranslation(TOPIC_QUESTION + text, template, "topic")
            return row
        topic = self.topic(text, context.stats, draws)
        if not topic:
            return "no topic phrase"
        instruction, template_id = self.render("default", draws, topic=join_words(topic))
        return self.row(thread, context, instruction=instruction, response=text, template_id=template_id,
                        variant="default")
