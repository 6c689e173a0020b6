"""The one interface every task generator implements.

A task is offered threads one at a time. It says whether it can use a thread (`decline_reason`), and builds
one row from it (`build`). Everything a task needs beyond the thread — cluster statistics, the feed of
earlier threads, the split — comes in a `TaskContext`, so a task never knows how it is scheduled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

from instruct.feed import Feed
from instruct.records import NOT_LOOKED_UP, Row, Thread, row_meta
from instruct.seeding import Draws
from instruct.templates import Slots, Template, TemplateSet
from instruct.text import ClusterStats, PostWords, post_words


@dataclass(slots=True)
class TaskContext:
    """What a task may look at besides the thread it is offered.

    Args:
        cluster: the cluster key.
        stats: word statistics of the cluster (a bounded sample of it).
        split: the split the current thread belongs to (``train`` or ``validation``).
        earlier: returns the earlier threads of the same split, oldest first, within the configured
            look-back (only tasks with ``lookback > 0`` ask for it).
        chunk: the threads of the current chunk (up to CHUNK_LINES consecutive lines) with their splits, as
            ``(thread, split)``, for tasks that group threads (summarization's stretches of the feed) and keep
            each group on one side of the split.
        feed: the feed ``earlier`` reads, when the worker runs the task: its message log lets a task take the
            newest messages of the split without walking the threads (None: tasks build what they need from
            ``earlier``).
    """

    cluster: str
    stats: ClusterStats
    split: str = "train"
    earlier: Callable[[], list[Thread]] = list
    chunk: Sequence[tuple[Thread, str]] = field(default_factory=tuple)
    feed: Feed | None = None


def anchor_post_words(thread: Thread, min_words: int) -> PostWords | str:
    """The words of the post a post-writing task writes from (the thread's anchor post), or why such a task
    cannot use the thread: it has no text message, or its post is too short. (One call for a task that checks
    the words further, instead of looking the post up again after post_decline_reason.)"""
    analysis = thread.anchor_words
    if analysis is NOT_LOOKED_UP:  # the first task to ask this thread
        post = thread.anchor_post()
        analysis = thread.anchor_words = post_words(post.text) if post is not None else None
    if analysis is None:
        return "no text message"
    if analysis.count < min_words:
        return f"post shorter than {min_words} words"
    return analysis


def post_decline_reason(thread: Thread, min_words: int) -> str | None:
    """Why a post-writing task cannot use a thread: it has no text message, or its post is too short."""
    analysis = anchor_post_words(thread, min_words)
    return analysis if isinstance(analysis, str) else None


class Task(ABC):
    """Base class of a task generator.

    Args:
        weight: relative chance of being drawn for a thread, among the tasks that can use it.
    """

    template_file: ClassVar[str]          # <set>/<template_file>.yaml holds this task's templates
    slots: ClassVar[dict[str, Slots]]      # placeholders provided, per template variant
    lookback: int = 0                      # how many earlier threads the task wants to see
    uses_stats: ClassVar[bool] = False     # whether it reads the cluster's word statistics
    # Inclusive (low, high) limits of numeric __init__ parameters, None = open; a number not listed must be >= 0.
    # Checked from the config before the task is built (schema.check_tasks), so a bad value names its key.
    bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {}
    # Set by the pipeline when an LLM responder writes this task's responses: a task whose offline answer
    # needs something the model supplies itself (a label, a paraphrase partner) then accepts threads without it.
    llm_answers: bool = False

    def __init__(self, weight: float = 1.0):
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.name = self.template_file
        self._templates: dict[str, list[Template]] = {}
        self._meta = row_meta(task=self.name, cluster="", split="", source="blueprint")

    def bind(self, name: str, templates: TemplateSet) -> "Task":
        """Name the task after its config key and load (and lint) its templates."""
        self.name = name
        self._templates = templates.variants(self.template_file, self.slots)
        self._meta = row_meta(task=name, cluster="", split="", source="blueprint")  # what ``row`` fills in
        return self

    def describe(self) -> dict:
        """Parameters for the manifest and the dataset card."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    @abstractmethod
    def decline_reason(self, thread: Thread, context: TaskContext) -> str | None:
        """None if the task can use the thread, else a short reason (counted in the manifest)."""

    @abstractmethod
    def build(self, thread: Thread, context: TaskContext, draws: Draws) -> Row | str:
        """One row from the thread, or a reason why it could not be built after all."""

    def begin_chunk(self, context: TaskContext) -> None:
        """Called before the threads of a chunk are offered (``context.chunk`` holds them, with their splits)."""

    # Helpers for subclasses ------------------------------------------------------------------------

    def render(self, variant: str, draws: Draws, **values: object) -> tuple[str, str]:
        """Render a template of ``variant`` drawn uniformly; returns ``(text, template_id)``."""
        template = draws.pick(self._templates[variant])
        return template.render(values), template.id

    def row(self, thread: Thread, context: TaskContext, *, instruction: str, response: str, template_id: str,
            variant: str | None = None, thread_ids: list[str] | None = None,
            needle_depths: list[float] | None = None, split_point: int | None = None) -> Row:
        """A row of this task from ``thread``, with the lineage ``row_meta`` gives it."""
        # A copy of this task's meta with the row's own keys set: the same dict as row_meta(...) makes (keys
        # in its order), without a keyword call per row, which is what costs.
        meta = self._meta.copy()
        meta["variant"] = variant
        meta["template_id"] = template_id
        meta["cluster"] = context.cluster
        meta["thread_id"] = thread.id
        meta["thread_ids"] = thread_ids if thread_ids is not None else ([thread.id] if thread.id else [])
        meta["line"] = thread.line
        meta["split"] = context.split
        meta["needle_depths"] = needle_depths or []
        meta["split_point"] = split_point
        return Row(self.name, instruction, response, "", meta)  # positional: a keyword call costs more per row
