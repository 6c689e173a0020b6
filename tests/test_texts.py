"""What the filter stage reads of a line without validating it (instruct/filters/texts.py): for every line
``parse_thread`` accepts, exactly the parsed thread's anchor text, own id and message texts; for any other line,
no crash."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct.filters import texts
from instruct.parsing import Reject, parse_thread

# Each field right or wrong in the ways a broken file has it: most messages well formed, so that many lines
# are accepted, and one wrong field enough to reject a line.
times = st.sampled_from([3, -1])
good_message = st.one_of(
    st.fixed_dictionaries({"user_id": st.just("u1"), "text": st.sampled_from(["hello there", "Ünï 🙂", "last"])},
                          optional={"actions": st.sampled_from([{"like": False}, '{"ignore": true}']),
                                    "relative_integer_time": times}),
    st.fixed_dictionaries({"user_id": st.just("u1"), "actions": st.sampled_from([{"like": True}, '{"ignore": true}'])},
                          optional={"text": st.sampled_from([None, "", "  "]), "relative_integer_time": times}))
bad_message = st.fixed_dictionaries(
    {"user_id": st.sampled_from(["u1", "", 5])},
    optional={"text": st.sampled_from(["fine", 7, ["x"]]), "actions": st.sampled_from(["{bad", {"zap": 1}]),
              "relative_integer_time": st.sampled_from([2**64 - 1, "soon", True])})
messages = st.lists(st.one_of(good_message, good_message, good_message, good_message, bad_message), max_size=4)
record = st.one_of(
    messages,
    st.fixed_dictionaries({"thread": st.one_of(messages, messages, st.just("no"))},
                          optional={"id": st.sampled_from(["t-1", "t-1", "", None, 9]), "cluster_id": st.just(3)}),
    st.sampled_from([5, "text", None, {"id": "t-2"}]))


def _expected(raw: bytes):
    try:
        thread = parse_thread(raw, cluster="c", line=1)
    except Reject:
        return None
    anchor = thread.anchor_post()
    return (anchor.text if anchor else None,
            (thread.id if "id" in thread.fields else None, [m.text for m in thread.messages if m.text]))


def _check(raw: bytes) -> bool:
    expected = _expected(raw)
    anchor, read = texts.anchor_text(raw), texts.message_texts(raw)  # neither may raise, whatever the line
    if expected is not None:
        assert (anchor, read) == expected
    return expected is not None


@settings(max_examples=800, deadline=None)
@given(record, st.sampled_from([b"", b"\xef\xbb\xbf"]), st.sampled_from([b"", b"\n", b"\r\n"]))
def test_an_accepted_line_reads_as_its_parsed_thread(value, bom, ending):
    _check(bom + orjson.dumps(value) + ending)


def test_broken_lines_do_not_crash():
    for raw in (b"", b"\n", b"   \r\n", b"{", b"\xef\xbb\xbf[", b"[1, 2]", b'{"thread": [{"text": 5}]}', b"\xff\xfe"):
        _check(raw)


def test_every_line_of_the_real_samples_reads_as_its_parsed_thread(shared_lines):
    accepted = sum(_check(raw) for *_, raw in shared_lines)
    assert accepted >= 800
