"""The equal-work section of the benchmark: the script we replace against ``preset=paper tasks.needle.weight=0``.

The original (BluePrint's ``clustering/instruct_dataset/generate_instructions.py``, passed by path, never copied
into this repository) reads the intermediate shape (a bare JSON list of messages a line, ``actions`` a JSON
string). Both tools are given the same files: a raw-shape copy of the benchmark corpus, and a Dolly-format file
of 15 000 rows (the size of databricks-dolly-15k, which is not on these machines) built from the bundled Dolly
sample. With its needle weight at 0, ``preset=paper`` runs the two tasks the original really writes rows with
(its needle never fires on released data: every user id differs per thread).

Runs are interleaved in rounds (the order reversed every other round, so a load that drifts hits both sides
alike), and every ratio is the median of the per-round ratios. CPU is ``getrusage(RUSAGE_CHILDREN)`` user + sys
of the whole process tree of one run (pool workers included), so other work on a shared machine inflates it
far less than wall time.

More of our runs can be added to the comparison: ``Variant(label, overrides)``, or ``--variant 'LABEL=OVERRIDE
OVERRIDE …'`` on the command line (its overrides are added to the base variant's); each is also shown against
the base variant. ``filter_variants`` are the filters' runs (``--filters``): every filter off, each filter on its
own beside the default dedup, and every filter on, so the report gives the cost of each.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson

# The intermediate shape's 13 action keys, in its order (../shared/data/README.md): no post/reply.
RAW_ACTION_KEYS = ("like", "unlike", "repost", "unrepost", "follow", "unfollow", "block", "unblock", "post_update",
                   "post_delete", "profile_update", "quote", "ignore")
DOLLY_ROWS = 15_000
BASE_LABEL = "preset=paper tasks.needle.weight=0"
BASE_OVERRIDES = ["preset=paper", "tasks.needle.weight=0"]
# Targets of issue 15 (ratios against the original, from one run on 2 cores).
TARGET_CPU_PER_ROW = 0.8   # workers=1, CPU per row written
TARGET_WALL = 0.8          # workers=2, wall time of the whole run
TARGET_VARIANT_EXTRA = 0.15  # a variant (every filter on) against the base variant, CPU per row


@dataclass(frozen=True)
class Variant:
    """One of our configurations in the comparison.

    Args:
        label: how the report names it.
        overrides: command-line overrides added to the common ones (corpus, Dolly file, output folder, workers).
        root: the checkout whose ``run.py`` runs it (another commit's code, e.g. main, for a before/after).
    """

    label: str
    overrides: list[str]
    root: Path | None = None


def base_variants(extra: list[Variant] = ()) -> list[Variant]:
    """The base variant, then ``extra`` (the hook for "with every filter on" and the like)."""
    return [Variant(BASE_LABEL, list(BASE_OVERRIDES)), *extra]


def parse_variant(text: str) -> Variant:
    """``'LABEL=key=value key=value'`` → Variant(LABEL, [base overrides…, key=value, …]) (the label ends at the
    first '=')."""
    label, _, overrides = text.partition("=")
    if not label or not overrides:
        raise SystemExit(f"--variant wants 'LABEL=OVERRIDE …', got {text!r}")
    return Variant(label.strip(), [*BASE_OVERRIDES, *overrides.split()])


FILTERS_OFF = "filters off (dedup=none)"
EVERY_FILTER = "every filter on"
BUDGET = "budget.max_tokens=4096"


def filter_variants(eval_files: list[Path]) -> list[Variant]:
    """The base variant (dedup, the default) with every filter off, with decontamination against ``eval_files``
    added, with a token budget added, and with both: the cost of each filter is its run against the base (dedup's,
    the base against the first)."""
    decontaminate = "decontaminate.paths=[" + ",".join(str(path) for path in eval_files) + "]"
    return [Variant(FILTERS_OFF, [*BASE_OVERRIDES, "dedup=none"]),
            Variant("+ decontaminate (eval sample)", [*BASE_OVERRIDES, decontaminate]),
            Variant(f"+ {BUDGET}", [*BASE_OVERRIDES, BUDGET]),
            Variant(EVERY_FILTER, [*BASE_OVERRIDES, decontaminate, BUDGET])]


# --- the inputs both tools read ------------------------------------------------------------------------------

def raw_message(message: dict, first_time: int) -> dict:
    """A released-shape message in the intermediate shape: text, or else its actions as a JSON string."""
    raw = {"user_id": message["user_id"],
           "unix_epoch": (message["relative_integer_time"] - first_time) * 1_000_000}
    if message.get("text"):
        raw["text"] = message["text"]
    else:
        flags = message.get("actions") or {}
        raw["actions"] = json.dumps({key: bool(flags.get(key, False)) for key in RAW_ACTION_KEYS})
    return raw


def build_raw_corpus(released: list[Path], folder: Path) -> list[Path]:
    """The released-shape files as the intermediate shape, one line per thread (reused while their stamp fits)."""
    spec = {"from": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in released]}
    stamp = folder / "corpus.json"
    files = [folder / p.name for p in released]
    if stamp.exists() and orjson.loads(stamp.read_bytes()) == spec and all(f.exists() for f in files):
        return files
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for source, target in zip(released, files):
        print(f"  writing {target} (intermediate shape)", file=sys.stderr)
        with open(source, "rb") as lines, open(target, "w", encoding="utf-8") as out:
            for line in lines:
                thread = orjson.loads(line)["thread"]
                first = thread[0]["relative_integer_time"]
                out.write(json.dumps([raw_message(m, first) for m in thread]) + "\n")
    stamp.write_bytes(orjson.dumps(spec))
    return files


def build_dolly(sample: Path, target: Path, rows: int = DOLLY_ROWS, seed: int = 20240601) -> Path:
    """A Dolly-format file of ``rows`` rows: sample rows with their words shuffled (the same bytes every time)."""
    base = [orjson.loads(line) for line in sample.read_bytes().splitlines() if line.strip()]
    spec = orjson.dumps({"rows": rows, "seed": seed, "sample": hashlib.sha256(sample.read_bytes()).hexdigest()})
    stamp = target.with_suffix(".stamp")
    if target.exists() and stamp.exists() and stamp.read_bytes() == spec:
        return target
    rng = random.Random(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as out:
        for _ in range(rows):
            row = dict(rng.choice(base))
            for key in ("instruction", "context", "response"):
                words = row[key].split()
                rng.shuffle(words)
                row[key] = " ".join(words)
            out.write(json.dumps(row) + "\n")
    stamp.write_bytes(spec)
    return target


# --- one run ------------------------------------------------------------------------------------------------

@dataclass
class Sample:
    rows: int
    cpu: float
    wall: float
    maxrss_mib: float


@dataclass
class Runner:
    """Everything a run of either tool needs; ``wrapped(command, cwd)`` measures one process tree."""

    work: Path
    corpus: Path
    dolly: Path
    original: Path
    wrapped: object
    root: Path

    def original_run(self) -> Sample:
        out = self.work / "equal-original"
        shutil.rmtree(out, ignore_errors=True)
        figures = self.wrapped([sys.executable, str(self.original), "--input_dir", str(self.corpus),
                                "--output_dir", str(out), "--dolly_path", str(self.dolly),
                                "--max_chains_per_cluster", "10000", "--dolly_mix_fraction", "0.2", "--seed", "42"],
                               self.root)
        rows = 0
        for path in out.glob("cluster_*.jsonl"):
            with open(path, "rb") as handle:
                rows += sum(1 for _ in handle)
        shutil.rmtree(out)
        return Sample(rows, figures["cpu_seconds"], figures["seconds"], figures["maxrss_kib"] / 1024)

    def ours(self, variant: Variant, workers: int) -> Sample:
        runs = self.work / "equal-runs"
        shutil.rmtree(runs, ignore_errors=True)
        root = variant.root or self.root
        command = [sys.executable, "run.py", f"source.path={self.corpus}", f"dolly.path={self.dolly}",
                   f"output_root={runs}", "run_name=equal", "progress=false", f"workers={workers}",
                   *variant.overrides]
        figures = self.wrapped(command, root)
        manifests = sorted(runs.glob("equal/*/manifest.json"))
        if not manifests:
            raise SystemExit(f"no manifest.json under {runs}")
        rows = orjson.loads(manifests[-1].read_bytes())["counts"]["rows"]
        shutil.rmtree(runs)
        return Sample(rows, figures["cpu_seconds"], figures["seconds"], figures["maxrss_kib"] / 1024)


# --- the section --------------------------------------------------------------------------------------------

ORIGINAL = "original generate_instructions.py"


@dataclass
class Series:
    label: str
    workers: int
    variant: Variant | None = None  # None: the original
    samples: list[Sample] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(s, attribute) for s in self.samples)


def measure(runner: Runner, variants: list[Variant], workers: list[int], rounds: int) -> list[Series]:
    """``rounds`` interleaved rounds of: the original, then every variant with every worker count."""
    plan = [(ORIGINAL, 1, None)] + [(v.label, w, v) for v in variants for w in workers]
    series = {(label, w): Series(label, w, v) for label, w, v in plan}
    for index in range(rounds):
        for label, count, variant in (plan if index % 2 == 0 else plan[::-1]):
            print(f"equal work, round {index + 1}/{rounds}: {label}, workers={count} …", file=sys.stderr)
            sample = runner.original_run() if variant is None else runner.ours(variant, count)
            series[(label, count)].samples.append(sample)
    return list(series.values())


def _ratios(a: Series, b: Series, value) -> list[float]:
    """value(a's sample) / value(b's sample), round by round."""
    return [value(x) / value(y) for x, y in zip(a.samples, b.samples)]


def _per_round(a: Series, b: Series, value) -> float:
    """The median over rounds of value(a's sample) / value(b's sample)."""
    return statistics.median(_ratios(a, b, value))


def _spread(a: Series, b: Series, value) -> str:
    """The rounds' lowest and highest ratio, so a verdict shows how much the machine moved it."""
    ratios = _ratios(a, b, value)
    return f" (rounds {min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""


def cpu_per_row(sample: Sample) -> float:
    return sample.cpu / sample.rows


def report(series: list[Series], rounds: int, base_label: str = BASE_LABEL) -> list[str]:
    original = series[0]
    header = (f"{'run':<44} {'workers':>7} {'rows':>8} {'CPU s':>7} {'wall s':>7} {'CPU µs/row':>10} "
              f"{'CPU/row ×orig':>13} {'CPU ×orig':>9} {'wall ×orig':>10} {'peak RSS MiB':>12}")
    lines = [f"equal work: the same input files and Dolly file for both; medians of {rounds} interleaved rounds, "
             f"ratios = median of the per-round ratios",
             header, "-" * len(header)]
    for s in series:
        lines.append(f"{s.label[:44]:<44} {s.workers:>7} {int(s.median('rows')):>8} {s.median('cpu'):>7.2f} "
                     f"{s.median('wall'):>7.2f} {s.median('cpu') / s.median('rows') * 1e6:>10.2f} "
                     f"{_per_round(s, original, cpu_per_row):>13.2f} "
                     f"{_per_round(s, original, lambda x: x.cpu):>9.2f} "
                     f"{_per_round(s, original, lambda x: x.wall):>10.2f} {s.median('maxrss_mib'):>12.1f}")
    by_key = {(s.label, s.workers): s for s in series}
    one, two = by_key.get((base_label, 1)), by_key.get((base_label, 2))
    if one:
        ratio = _per_round(one, original, cpu_per_row)
        lines.append(f"[{'met' if ratio <= TARGET_CPU_PER_ROW else 'NOT met'}] CPU per row written, workers=1: "
                     f"{ratio:.2f}x the original's{_spread(one, original, cpu_per_row)} "
                     f"(target <= {TARGET_CPU_PER_ROW})")
    if two:
        ratio = _per_round(two, original, lambda x: x.wall)
        lines.append(f"[{'met' if ratio <= TARGET_WALL else 'NOT met'}] wall time, workers=2: {ratio:.2f}x the "
                     f"original's{_spread(two, original, lambda x: x.wall)} (target <= {TARGET_WALL})")
    for s in series[1:]:
        base = by_key.get((base_label, s.workers))
        if s.label == base_label or base is None:
            continue
        ratio = _per_round(s, base, cpu_per_row)
        wall = _per_round(s, base, lambda x: x.wall)
        if s.variant.root is not None:  # another checkout's code: a before/after, no target
            lines.append(f"      this checkout against {s.label}, workers={s.workers}: CPU per row "
                         f"{1 / ratio:.2f}x, wall {1 / wall:.2f}x")
        elif s.label == FILTERS_OFF:  # what the default dedup costs: the base against this
            lines.append(f"      dedup (in the base), workers={s.workers}: {1 / ratio:.2f}x the CPU per row of "
                         f"every filter off, wall {1 / wall:.2f}x")
        elif s.label == EVERY_FILTER:
            verdict = "met" if ratio <= 1 + TARGET_VARIANT_EXTRA else "NOT met"
            lines.append(f"[{verdict}] {s.label}, workers={s.workers}: {ratio:.2f}x the base variant's CPU per row"
                         f"{_spread(s, base, cpu_per_row)}, wall {wall:.2f}x (target <= {1 + TARGET_VARIANT_EXTRA:.2f})")
        else:
            lines.append(f"      {s.label}, workers={s.workers}: {ratio:.2f}x the base variant's CPU per row, "
                         f"wall {wall:.2f}x")
    return lines
