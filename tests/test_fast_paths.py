"""The fast paths taken for speed give exactly what the plain code they stand in for gives.

- a well-formed message parsed by the fast path equals the careful path's result, and every message the fast
  path does not take is left to the careful path (so reject reasons do not change);
- the needle haystack text matches a plain line-by-line rendering, also past the precomputed labels;
- the parent's block copy of part files equals the row-by-row interleaving with Dolly rows, and fails loudly
  when the parts hold fewer rows than counted or a part's last line was cut short;
- a Dolly row's line encoded once per run (its meta put in per file) equals the encoder's own, in every format.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import random

import pytest

from instruct.assemble import _concat
from instruct.assemble import mix_blocks as _mix_blocks
from instruct.dolly import DollyLines, DollyRow, dolly_row
from instruct.formats import FORMATS, RecordEncoder
from instruct.parsing import Reject, _check_message, _parse_message
from instruct.records import Message
from instruct.tasks.needle import Haystack

_VALUES = [None, True, False, 0, 7, -3, 2**63, 2**63 + 1, 1.5, float("nan"), "x", "", "  ", "{}", '{"like": true}',
           [], {}, {"like": True}, {"like": 1}, {"bogus": True}, {"reply": True, "like": True, "post": False},
           # the intermediate shape's actions strings: well-formed, all false, a bad flag, an unknown key
           '{"like": false, "unlike": false, "repost": true, "ignore": false, "profile_update": false}',
           '{"like": false, "follow": false, "ignore": false}', '{"like": 1, "follow": true}',
           '{"bogus": true, "like": true}', '{"follow": true, "like": true}']
_KEYS = ["user_id", "text", "actions", "relative_integer_time", "unix_epoch", "other"]


def _outcome(parse, item, position):
    try:
        return parse(item, position)
    except Reject as reject:
        return f"reject: {reject}"


def test_fast_message_path_equals_the_careful_path():
    rng = random.Random(5)
    taken = 0
    for _ in range(20_000):
        item = {"user_id": "u", "text": "hello there"} if rng.random() < 0.5 else {}
        for key in rng.sample(_KEYS, rng.randint(0, 5)):
            item[key] = rng.choice(_VALUES)
        fast, careful = _outcome(_parse_message, item, 3), _outcome(_check_message, item, 3)
        assert repr(fast) == repr(careful), item
        taken += isinstance(fast, Message)
    assert taken > 1000  # the comparison covered accepted messages, not only rejects


def _plain_haystack_text(messages: list[Message]) -> tuple[str, list[str]]:
    labels: dict[str, str] = {}
    order = [labels.setdefault(m.user, f"User_{len(labels)}") for m in messages]
    return "\n".join(f"[{n}] {label}: {m.text}" for n, (label, m) in enumerate(zip(order, messages), 1)), order


@pytest.mark.parametrize("size,users", [(1, 1), (30, 7), (30, 30), (300, 280), (300, 300), (600, 40)])
def test_haystack_text_matches_a_plain_rendering(size, users):
    messages = [Message(user=f"u{(i * 7) % users}", time=i, text=f"text {i} ü", actions=None) for i in range(size)]
    haystack = Haystack([m.user for m in messages], [m.text for m in messages], ["t"])
    text, labels = _plain_haystack_text(messages)
    assert haystack.text == text
    assert haystack.labels == labels


def _row_by_row(data: list[bytes], metas: list[bytes], dolly: list[tuple[bytes, bytes]], at: set[int]):
    out, meta_out, rows, extra = io.BytesIO(), io.BytesIO(), iter(zip(data, metas)), iter(dolly)
    for position in range(len(data) + len(dolly)):
        line, meta = next(extra) if position in at else next(rows)
        out.write(line)
        meta_out.write(meta)
    return out.getvalue(), meta_out.getvalue()


@pytest.mark.parametrize("generated,dolly_rows", [(0, 0), (0, 3), (5, 0), (40, 10), (40, 40), (5000, 0), (5000, 3)])
def test_block_copy_equals_row_by_row(generated, dolly_rows):
    rng = random.Random(generated * 100 + dolly_rows)
    data = [b'{"row": %d}\n' % i for i in range(generated)]
    metas = [b'{"meta": %d}\n' % i for i in range(generated)]
    dolly = [(b'{"dolly": %d}\n' % i, b'{"dolly meta": %d}\n' % i) for i in range(dolly_rows)]
    at = set(rng.sample(range(generated + dolly_rows), dolly_rows))
    out, meta_out, digest = io.BytesIO(), io.BytesIO(), hashlib.sha256()
    _mix_blocks(out, meta_out, digest, iter(data), iter(metas), generated + dolly_rows, sorted(at), iter(dolly))
    expected, expected_meta = _row_by_row(data, metas, dolly, at)
    assert out.getvalue() == expected
    assert meta_out.getvalue() == expected_meta
    assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_block_copy_fails_when_parts_are_short():
    data = [b"{}\n"] * 4
    with pytest.raises(RuntimeError, match="fewer rows"):
        _mix_blocks(io.BytesIO(), io.BytesIO(), hashlib.sha256(), iter(data), None, 6, [2], itertools.repeat((b"d\n", None)))


def test_a_part_cut_short_fails_instead_of_joining_two_rows(tmp_path):
    whole, cut = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    whole.write_bytes(b"{}\n{}\n")
    cut.write_bytes(b"{}\n{")
    with pytest.raises(RuntimeError, match="cut short"):
        list(_concat([whole, tmp_path / "missing.jsonl", cut]))
    assert list(_concat([whole, tmp_path / "missing.jsonl"])) == [b"{}\n", b"{}\n"]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_dolly_lines_equal_the_encoders_own(fmt):
    encoder = RecordEncoder(fmt)
    lines = DollyLines(encoder)
    rows = [DollyRow(1, "Say hi", "", "hi", "open_qa"), DollyRow(2, 'A "quoted" {"meta": 1}', "ctx ü\n", "r", ""),
            DollyRow(3, "\u0000 and \\", "{\"\\u0000meta slot\\u0000\": 0}", '{"text": "x"}', "brainstorming")]
    for cluster, split in [("cluster_0", "train"), ("cluster_1", "validation"), ("cluster_*.jsonl", "train")]:
        for row in rows:  # every row twice: encoded, then from what was kept
            assert lines.encode(row, cluster=cluster, split=split) == encoder.encode(
                dolly_row(row, cluster=cluster, split=split))
    assert None not in lines._parts.values()  # the kept lines were used, not a fallback to the encoder


_RELEASED_ACTIONS = ("like", "unlike", "repost", "unrepost", "follow", "unfollow", "block", "unblock", "post_update",
                     "post_delete", "quote", "post", "reply")


def test_remembered_actions_objects_are_checked_as_strictly_as_new_ones():
    """The fast path remembers `actions` objects by their JSON text: a flag of 1, 1.0 or 0 instead of true or
    false, another key order or an unknown key must still give the careful path's answer, also after the
    well-formed look-alike was seen (and remembered) first."""
    rng = random.Random(7)
    for _ in range(3000):
        keys = list(_RELEASED_ACTIONS)
        if rng.random() < 0.2:
            rng.shuffle(keys)
        flags = {key: rng.random() < 0.1 for key in keys}
        variants = [flags]
        for wrong in (1, 0, 1.0, 0.0, None, "true", [True]):
            key = rng.choice(keys)
            variants.append({**flags, key: wrong})
        variants.append({**flags, "teleport": False})
        for actions in variants * 2:  # the second time round, the well-formed ones are remembered
            item = {"user_id": "u", "relative_integer_time": 3, "text": rng.choice(["hi", None, " "]), "actions": actions}
            assert repr(_outcome(_parse_message, item, 1)) == repr(_outcome(_check_message, item, 1)), item


def test_an_actions_value_nested_deeper_than_orjson_writes_is_rejected_not_raised():
    nested = True
    for _ in range(300):
        nested = [nested]
    item = {"user_id": "u", "text": "hi", "actions": {"like": nested}}
    assert _outcome(_parse_message, item, 0) == _outcome(_check_message, item, 0)
    assert "must be true or false" in _outcome(_parse_message, item, 0)
