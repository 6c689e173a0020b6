"""Fuzzed cluster files: thousands of generated bad lines mixed with good ones go through a full pipeline run.

Nothing may crash; every bad line must be in rejects.jsonl with its file, line and a reason; every good line
must be used (or sampled out when a cap is set); and per file ``read = used + sampled_out + rejected = lines``.

A line is *good* when it is a thread in one of the two shapes; a UTF-8 BOM before it or a ``\\r\\n`` ending
does not change that (files saved on Windows or by spreadsheet tools look like this), so such lines are
generated as good lines and must be used.
"""

from __future__ import annotations

import gzip
import itertools
import random
import shutil
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import orjson
from conftest import compose_config, manifest_of, read_jsonl
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from instruct.clusterfile import scan
from instruct.pipeline import generate
from instruct.plan import select_lines
from instruct.records import ACTION_KEYS

RELEASED_ACTIONS = ACTION_KEYS[:13]
RAW_ACTIONS = tuple(k for k in ACTION_KEYS if k not in ("post", "reply"))
WORDS = ("the council voted to fund the new bridge after months of debate and residents say traffic will ease "
         "rain storm coffee garden election tariffs farmers library rivers hiking music festival").split()
HEX = "0123456789abcdef"
ints = st.integers(-2**63, 2**63 - 1)  # what orjson can write
BOM = b"\xef\xbb\xbf"

# --- good lines -----------------------------------------------------------------------------------------------

word_text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=25).map(" ".join)
# Any Unicode a JSON string can carry (no lone surrogates: they cannot be valid UTF-8), with something visible.
any_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60).filter(str.strip)
user_ids = st.text(HEX, min_size=1, max_size=64)
times = st.integers(0, 2**62)


def _actions(keys: tuple[str, ...], at_least_one: bool):
    """All the shape's action flags, a few of them true (cheaper to draw than one boolean per key)."""
    true = st.sets(st.sampled_from(keys), min_size=1 if at_least_one else 0, max_size=3)
    return true.map(lambda chosen: {key: key in chosen for key in keys})


# Strategies are built once, here: building them inside a composite for every draw costs more than drawing.
released_flags = _actions(RELEASED_ACTIONS, at_least_one=False)
released_some = _actions(RELEASED_ACTIONS, at_least_one=True)
raw_some = _actions(RAW_ACTIONS, at_least_one=True).map(lambda flags: orjson.dumps(flags).decode())
cluster_ids = st.one_of(st.integers(0, 30), st.just(1e30), st.none(), st.text(max_size=5))
record_ids = st.text(HEX, min_size=1, max_size=12).map(lambda h: "t-" + h)
extras = st.one_of(st.none(), st.lists(ints, max_size=3), st.dictionaries(st.text(max_size=5), st.booleans(), max_size=3))


def _records(text):
    """Good threads: the released shape (an object, sometimes with odd extra fields) or the raw shape (a list,
    actions as a JSON string). A message has text, or only actions with at least one true."""
    released_message = (
        st.fixed_dictionaries({"user_id": user_ids, "relative_integer_time": times, "text": text},
                              optional={"actions": released_flags})
        | st.fixed_dictionaries({"user_id": user_ids, "relative_integer_time": times, "actions": released_some}))
    raw_message = (st.fixed_dictionaries({"user_id": user_ids, "unix_epoch": times, "text": text})
                   | st.fixed_dictionaries({"user_id": user_ids, "unix_epoch": times, "actions": raw_some}))
    released = st.fixed_dictionaries(
        {"thread": st.lists(released_message, min_size=1, max_size=4), "cluster_id": cluster_ids, "id": record_ids},
        optional={"extra": extras})
    return released_message, released | st.lists(raw_message, min_size=1, max_size=4)


released_message, word_records = _records(word_text)
_, any_records = _records(word_text | any_text)
line_kinds = st.sampled_from(["plain", "plain", "bom", "crlf", "bom+crlf"])


@st.composite
def good_line(draw):
    """(kind, bytes): a good record, possibly with a BOM in front or a CRLF ending."""
    line = orjson.dumps(draw(any_records))
    kind = draw(line_kinds)
    if "bom" in kind:
        line = BOM + line
    if "crlf" in kind:
        line += b"\r"  # the file gets the \n
    return f"good:{kind}", line


# --- bad lines ------------------------------------------------------------------------------------------------



def _base_lines(count: int) -> list[bytes]:
    """Varied good lines (both shapes, 1-4 messages) for the mutations below to break. A fixed pool, drawn with
    a seeded stdlib generator: mutating a pool line is as good a test as mutating a fresh one, and cheaper."""
    rng = random.Random(6)
    lines = []
    for n in range(count):
        size = rng.randint(1, 4)
        texts = [" ".join(rng.choices(WORDS, k=rng.randint(1, 25))) for _ in range(size)]
        if n % 2:
            lines.append(orjson.dumps([{"user_id": f"{rng.getrandbits(64):x}", "unix_epoch": rng.randint(0, 2**40),
                                        "text": text} for text in texts]))
        else:
            lines.append(orjson.dumps({"thread": [{"user_id": f"{rng.getrandbits(64):x}",
                                                   "relative_integer_time": rng.randint(0, 10**6), "text": text}
                                                  for text in texts], "cluster_id": 3, "id": f"b-{n}"}))
    return lines


plain_good = st.sampled_from(_base_lines(64))
short_threads = st.lists(released_message, min_size=1, max_size=3)
json_scalars = st.one_of(ints, st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10),
                         st.booleans(), st.none())
not_a_list = st.one_of(json_scalars, st.dictionaries(st.text(max_size=5), ints, max_size=2))
not_a_string = st.one_of(ints, st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                         st.lists(ints, max_size=2), st.dictionaries(st.text(max_size=3), ints, max_size=2))
not_a_number = st.one_of(st.text(max_size=8), st.booleans(), st.none(), st.lists(ints, max_size=2),
                         st.dictionaries(st.text(max_size=3), ints, max_size=1))


def _with_message(messages: list, position: int, message: object) -> bytes:
    messages = list(messages)
    messages[position % len(messages)] = message
    return orjson.dumps({"thread": messages, "id": "x"})


@st.composite
def truncated_json(draw):
    line = draw(plain_good)
    return line[: draw(st.integers(1, len(line) - 1))]


@st.composite
def wrong_type_top(draw):
    return orjson.dumps(draw(st.one_of(json_scalars, st.lists(json_scalars, min_size=1, max_size=3))))


@st.composite
def wrong_type_record(draw):
    messages = draw(short_threads)
    choice = draw(st.sampled_from(["thread", "missing", "id", "empty id", "duplicate"]))
    if choice == "thread":
        return orjson.dumps({"thread": draw(not_a_list), "id": "x"})
    if choice == "missing":
        return orjson.dumps({"threads": messages, "id": "x"})
    if choice == "id":
        return orjson.dumps({"thread": messages, "id": draw(st.one_of(not_a_string, st.none()))})
    if choice == "empty id":
        return orjson.dumps({"thread": messages, "id": ""})
    # A duplicated key: the last one wins, as in every JSON reader.
    return orjson.dumps({"thread": messages})[:-1] + b',"thread":' + orjson.dumps(draw(not_a_list)) + b"}"


@st.composite
def wrong_type_message(draw):
    messages = draw(short_threads)
    position = draw(st.integers(0, 10))
    message = dict(messages[position % len(messages)])
    field = draw(st.sampled_from(["message", "no user", "user", "empty user", "text", "actions", "flag",
                                  "unknown action", "time"]))
    if field == "message":
        return _with_message(messages, position, draw(st.one_of(json_scalars, st.lists(ints, max_size=2))))
    if field == "no user":
        message.pop("user_id")
    elif field == "user":
        message["user_id"] = draw(st.one_of(not_a_string, st.none()))
    elif field == "empty user":
        message["user_id"] = ""
    elif field == "text":
        message["text"] = draw(not_a_string)
    elif field == "actions":
        message["actions"] = draw(st.one_of(ints, st.booleans(), st.none(), st.lists(st.booleans(), max_size=3)))
    elif field == "flag":
        flags = dict(message.get("actions") or {"like": True})
        flags[draw(st.sampled_from(RELEASED_ACTIONS))] = draw(
            st.one_of(st.integers(0, 1), st.none(), st.just("true"), st.lists(st.booleans(), max_size=1)))
        message["actions"] = flags
    elif field == "unknown action":
        message["actions"] = {**(message.get("actions") or {}), draw(st.sampled_from(["teleport", "Like", ""])): True}
    else:
        message[draw(st.sampled_from(["relative_integer_time", "unix_epoch"]))] = draw(not_a_number)
    return _with_message(messages, position, message)


empty_thread = st.sampled_from([b"[]", b'{"thread": []}', b'{"thread": [], "id": "x", "cluster_id": 1}', b"[ ]"])


@st.composite
def no_text_no_action(draw):
    message = {"user_id": draw(user_ids)}
    variant = draw(st.sampled_from(["bare", "empty text", "blank text", "all false", "empty actions"]))
    if variant == "empty text":
        message["text"] = ""
    elif variant == "blank text":
        message["text"] = draw(st.text(" \t\u00a0\u2003\u3000", min_size=1, max_size=5))
    elif variant == "all false":
        message["actions"] = {k: False for k in RELEASED_ACTIONS}
    elif variant == "empty actions":
        message["actions"] = "{}"
    others = draw(st.lists(released_message, max_size=2))
    return orjson.dumps({"thread": others + [message], "id": "x"})


def _not_a_json_object(text: str) -> bool:
    try:
        return not isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return True


@st.composite
def actions_bad_string(draw):
    actions = draw(st.one_of(
        st.text(max_size=30),
        _actions(RAW_ACTIONS, at_least_one=True).map(lambda a: orjson.dumps(a).decode()).flatmap(
            lambda s: st.integers(1, len(s) - 1).map(lambda k: s[:k])),
    ).filter(_not_a_json_object))
    return orjson.dumps([{"user_id": draw(user_ids), "unix_epoch": draw(times), "actions": actions}])


NON_FINITE = st.sampled_from([b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"1e400", b"-1e999",
                              b"1" + b"0" * 400])
HUGE = st.one_of(st.integers(19, 300).map(lambda k: str(10**k).encode()),
                 st.integers(2**63 + 2**11, 2**64 - 1).map(lambda n: str(n).encode()),
                 st.sampled_from([b"1e300", b"-1e300", b"1.7976931348623157e308", b"9.3e18"]))


@st.composite
def nan_or_huge(draw):
    value = draw(st.one_of(NON_FINITE, HUGE))
    where = draw(st.sampled_from([b"relative_integer_time", b"unix_epoch"]))
    return b'{"thread":[{"user_id":"ab","text":"rain again","' + where + b'":' + value + b'}],"id":"n"}'


INVALID_UTF8 = st.sampled_from([b"\xff", b"\xfe", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80",
                                b"\xf4\x90\x80\x80", b"\x80", b"\xf8\x88\x80\x80\x80"])


@st.composite
def invalid_utf8(draw):
    line = draw(plain_good)
    at = draw(st.integers(0, len(line)))
    return line[:at] + draw(INVALID_UTF8) + line[at:]


@st.composite
def lone_surrogate(draw):
    unit = draw(st.integers(0xD800, 0xDFFF))
    after = draw(st.sampled_from([b"", b" tail", b"\\u0041", b"\\ud800"]))
    if 0xD800 <= unit <= 0xDBFF and after == b"":
        after = b"!"
    if unit >= 0xDC00 and after == b"\\ud800":
        after = b""  # a low surrogate alone, then nothing
    escape = b"\\u%04x" % unit
    return b'{"thread":[{"user_id":"ab","text":"word ' + escape + after + b'"}],"id":"s"}'


blank = st.sampled_from([b"", b" ", b"   ", b"\t", b"\r", b" \t \r", BOM, BOM + b"  "])
junk = st.one_of(
    st.sampled_from([b"a,b,c", b"thread: []", b"{'thread': []}", b"null", b"undefined", b"<html>", b"}{",
                     b'{"thread": [{"user_id": "a", "text": "x"}]} trailing', b"[1]\x0c", b'"\x00"',
                     b'{"thread":[{"user_id":"a","text":"a\x00b"}]}', b"[" * 3000, b'{"a":' * 2000]),
    st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b and _not_a_json_object_bytes(b)),
)


def _not_a_json_object_bytes(raw: bytes) -> bool:
    """True when no parser could take ``raw`` for a thread (random bytes almost never are one)."""
    try:
        record = orjson.loads(raw.rstrip(b"\r").removeprefix(BOM))
    except orjson.JSONDecodeError:
        return True
    return not isinstance(record, (dict, list)) or record in ({}, [])


BAD = {
    "truncated JSON": truncated_json(),
    "wrong type (top level)": wrong_type_top(),
    "wrong type (record)": wrong_type_record(),
    "wrong type (message)": wrong_type_message(),
    "empty thread": empty_thread,
    "neither text nor actions": no_text_no_action(),
    "actions: invalid JSON string": actions_bad_string(),
    "NaN or huge number": nan_or_huge(),
    "invalid UTF-8": invalid_utf8(),
    "lone surrogate": lone_surrogate(),
    "blank line": blank,
    "junk": junk,
}
bad_line = st.one_of(*[strategy.map(lambda line, kind=kind: (f"bad:{kind}", line)) for kind, strategy in BAD.items()])


@st.composite
def cluster_file(draw):
    """(lines as (kind, bytes), newline at the end?, gzip?) with bad lines in the majority."""
    bad = draw(st.lists(bad_line, min_size=30, max_size=45))
    good = draw(st.lists(good_line(), min_size=3, max_size=15))
    order = draw(st.permutations(range(len(bad) + len(good))))
    lines = [(bad + good)[i] for i in order]
    return lines, draw(st.booleans()), draw(st.booleans())


# --- the run --------------------------------------------------------------------------------------------------

def _write(folder: Path, name: str, lines: list[tuple[str, bytes]], final_newline: bool, compressed: bool) -> Path:
    data = b"\n".join(line for _, line in lines) + (b"\n" if final_newline else b"")
    if lines and lines[-1][1] == b"" and not final_newline:
        data += b"\n"  # a blank last line only exists when a newline ends it
    path = folder / (name + (".jsonl.gz" if compressed else ".jsonl"))
    path.write_bytes(gzip.compress(data, mtime=0) if compressed else data)
    return path


def _config(folder: Path, cap: int | None = None):
    return compose_config("progress=false", f"source.path={folder}", "source.pattern=cluster_*",
                          f"source.max_chains_per_cluster={'null' if cap is None else cap}",
                          "source.max_reject_fraction=1.0", "mix=none", "seed=7",
                          "dedup=none")  # every good line must be used: the generated ones repeat texts


def _run(folder: Path, out: Path, cap: int | None):
    cfg = _config(folder, cap)
    return cfg, generate(cfg, out)


def _check_run(run_dir: Path, files: dict[str, tuple[Path, list[tuple[str, bytes]]]], cfg) -> None:
    manifest = manifest_of(run_dir)
    assert manifest["complete"] is True
    rejects = read_jsonl(run_dir / "rejects.jsonl")
    rejected_at = Counter((r["file"], r["line"]) for r in rejects)
    assert all(n == 1 for n in rejected_at.values()), "a line is rejected at most once"
    for reject in rejects:
        assert isinstance(reject["reason"], str) and reject["reason"].strip()
    used_lines: dict[str, set[int]] = {}
    for path in sorted((run_dir / "train").glob("*.jsonl")):
        for row in read_jsonl(path):
            used_lines.setdefault(row["meta"]["cluster"], set()).add(row["meta"]["line"])
    by_cluster = {entry["cluster"]: entry for entry in manifest["inputs"]["clusters"]}
    for key, (path, lines) in files.items():
        entry = by_cluster[key]
        cap = cfg.source.max_chains_per_cluster
        selected = set((select_lines(scan(path), cap, cfg.seed) + 1).tolist())
        bad = {n for n, (kind, _) in enumerate(lines, start=1) if kind.startswith("bad:")}
        good = {n for n, (kind, _) in enumerate(lines, start=1) if kind.startswith("good:")}
        assert entry["lines"] == len(lines)
        assert entry["read"] == entry["used"] + entry["sampled_out"] + entry["rejected"] == len(lines)
        assert entry["sampled_out"] == len(lines) - len(selected)
        mine = {line for (file, line) in rejected_at if file == str(path)}
        assert mine == bad & selected, {n: lines[n - 1] for n in sorted(mine ^ (bad & selected))[:3]}
        assert entry["used"] == len(good & selected)
        assert used_lines.get(key, set()) <= good & selected  # every row comes from a good line


# Derandomized and database-free, so every CI run sees the same examples; no shrinking, so a failure is
# reported at once (with the generated lines of the failing folder) instead of after minutes of shrinking.
FUZZ_SETTINGS = settings(max_examples=20, derandomize=True, database=None, deadline=None,
                         phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_fuzzed_bad_lines_are_all_rejected_and_good_lines_all_used():
    """>= 1,000 generated bad lines over 20 examples, each a two-file cluster folder run end to end."""
    seen: Counter = Counter()
    scratch = Path(tempfile.mkdtemp(prefix="fuzz_reader_"))
    folder = scratch / "in"
    composed = _config(folder)  # composed once: Hydra's compose costs more than a small run
    runs = itertools.count()
    try:
        @FUZZ_SETTINGS
        @given(first=cluster_file(), second=cluster_file(), cap=st.one_of(st.none(), st.none(), st.integers(1, 60)))
        def one_folder(first, second, cap):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            files = {}
            for name, (lines, final_newline, compressed) in (("cluster_0", first), ("cluster_1", second)):
                files[name] = (_write(folder, name, lines, final_newline, compressed), lines)
                seen.update(kind for kind, _ in lines)
            cfg = composed.copy()
            cfg.source.max_chains_per_cluster = cap
            run_dir = generate(cfg, scratch / f"out{next(runs)}")
            _check_run(run_dir, files, cfg)

        one_folder()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    bad_total = sum(n for kind, n in seen.items() if kind.startswith("bad:"))
    assert bad_total >= 1000, seen
    assert {f"bad:{kind}" for kind in BAD} <= set(seen), seen
    assert {"good:plain", "good:bom", "good:crlf", "good:bom+crlf"} <= set(seen), seen


# --- the cases a generator should not have to find ------------------------------------------------------------

def test_ten_megabyte_lines_bom_crlf_blank_lines_and_a_truncated_gzip(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = [orjson.dumps({"thread": [{"user_id": "ab", "relative_integer_time": n,
                                      "text": f"rain storm coffee garden {n} the council voted to fund the bridge"}],
                          "id": f"g{n}"}) for n in range(300)]
    huge_text = "word " * 2_000_000  # 10 MB
    plain = [
        ("good:bom", BOM + good[0]),
        ("good:crlf", good[1] + b"\r"),
        ("bad:blank", b""),
        ("bad:10 MB truncated", orjson.dumps({"thread": [{"user_id": "ab", "text": huge_text}]})[:-3]),
        ("good:10 MB", orjson.dumps({"thread": [{"user_id": "ab", "text": huge_text}], "id": "big"})),
        ("bad:blank", b"   \r"),
        ("good:bom+crlf", BOM + good[2] + b"\r"),
        ("bad:10 MB invalid UTF-8", b'{"thread": [{"user_id": "ab", "text": "' + b"\xff" * 10_000_000 + b'"}]}'),
        *[("good:plain", line) for line in good[3:20]],
    ]
    files = {"cluster_0": (_write(folder, "cluster_0", plain, True, False), plain)}

    # A .gz cut mid-stream: every line before the cut is used; the line the cut goes through is rejected.
    data = b"".join(line + b"\n" for line in good * 4)
    compressed = gzip.compress(data, mtime=0)
    cut = compressed[: len(compressed) * 3 // 5]
    (folder / "cluster_1.jsonl.gz").write_bytes(cut)
    decompressor = zlib.decompressobj(wbits=31)
    readable = decompressor.decompress(cut) + decompressor.flush()
    complete = readable.count(b"\n")
    assert 0 < complete < len(good) * 4 and not readable.endswith(b"\n")

    cfg, run_dir = _run(folder, tmp_path / "out", None)
    _check_run(run_dir, files, cfg)
    manifest = manifest_of(run_dir)
    gz = next(e for e in manifest["inputs"]["clusters"] if e["cluster"] == "cluster_1")
    assert gz["truncated"] and gz["used"] == complete
    assert gz["lines"] == gz["read"] == complete + 1 and gz["rejected"] == 1
    rejects = [r for r in read_jsonl(run_dir / "rejects.jsonl") if r["file"].endswith(".gz")]
    assert [r["line"] for r in rejects] == [complete + 1] and rejects[0]["reason"]
    reasons = {r["line"]: r["reason"] for r in read_jsonl(run_dir / "rejects.jsonl") if r["file"].endswith(".jsonl")}
    assert reasons[3] == reasons[6] == "blank line"
    assert reasons[4].startswith("invalid JSON") and reasons[8].startswith("invalid JSON")
    assert all(len(r["excerpt"]) <= 200 for r in read_jsonl(run_dir / "rejects.jsonl"))
