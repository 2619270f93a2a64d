"""tokenspy._speedups.Rows, the list a Tracker keeps its rows in and a Store queues them in: it
gives back what was appended (equal rows of the same types and float bits, other items as the
same objects), in order, as a queue too; it keeps no Python object of a plain row but the shared
strings; and the collector still sees what it holds as it came."""

from __future__ import annotations

import gc
import math
import struct
import sys
import weakref
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenspy import context
from tokenspy.record import CallRecord

Rows = getattr(context.speedups, "Rows", None)
pytestmark = pytest.mark.skipif(Rows is None, reason="tokenspy._speedups not built")

PLAIN = ("app.main", "gpt-4o", "openai", 1200, 300, 0.00472, 0.37, 1795410666.92, 0, 0, '["app.main"]',
         1024, 0, 128, 1, 0, "/srv/app.py", 12, "run", 0)


class Text(str):
    pass


def bits(value):
    if type(value) is float:
        return ("f", struct.pack("<d", value))
    return (type(value).__name__, value)


def same(a, b) -> bool:
    """Equal rows of the same types, floats compared bit for bit; other items: the same object."""
    if type(a) is not tuple:
        return a is b
    return type(b) is tuple and [bits(x) for x in a] == [bits(x) for x in b]


ints = st.one_of(st.integers(0, 10_000), st.integers(-(2**70), 2**70), st.booleans())
floats = st.floats(allow_nan=True, allow_infinity=True)
texts = st.one_of(st.sampled_from(["a", "gpt-4o", "", "é|\n"]), st.builds(Text, st.text(max_size=3)))


@st.composite
def rows(draw):
    row = list(PLAIN)
    # mostly the plain form, with any field now and then of another kind
    for i in draw(st.lists(st.integers(0, 19), max_size=3)):
        row[i] = draw(st.one_of(ints, floats, texts, st.none()))
    for i in (3, 4, 11, 12, 13):
        if draw(st.booleans()):
            row[i] = draw(st.integers(-(2**64), 2**64))
    for i in (5, 6, 7):
        if draw(st.booleans()):
            row[i] = draw(floats)
    return tuple(row)


items = st.one_of(rows(), st.just(CallRecord("f", "m", "p", 1, 2, 0.5, 1.0, 0.0)), st.tuples(st.integers()))


@settings(max_examples=300, deadline=None)
@given(st.lists(items, max_size=40))
def test_rows_give_back_what_was_appended(appended):
    got = Rows()
    for item in appended:
        got.append(item)
    assert len(got) == len(appended) and bool(got) == bool(appended)
    assert all(same(a, b) for a, b in zip(appended, list(got), strict=True))
    if appended:
        assert same(appended[-1], got[-1]) and same(appended[0], got[-len(appended)])
    with pytest.raises(IndexError):
        got[len(appended)]
    for k in (0, 3, 5, 8, 14, 17, 19):  # a field of every row, as the totals read it
        for a, b in zip(appended, got.column(k), strict=True):
            assert bits(a[k]) == bits(b) if type(a) is tuple and len(a) == 20 else a is b


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("append"), rows()), st.tuples(st.just("take"), st.integers(-1, 50)),
                          st.tuples(st.just("put_back"), st.integers(0, 50))), max_size=60))
def test_rows_as_a_queue_keep_the_order_of_a_deque(ops):
    got, model = Rows(), deque()
    taken: list = []
    for op, arg in ops:
        if op == "append":
            got.append(arg)
            model.append(arg)
        elif op == "take":
            n = max(0, min(arg, len(model)))
            expected = [model.popleft() for _ in range(n)]
            fields = got.take_flat(arg)  # the writer's way: the fields of the rows, row after row
            taken = [tuple(fields[i:i + 20]) for i in range(0, len(fields), 20)]
            assert len(fields) == 20 * n
            assert all(same(a, b) for a, b in zip(expected, taken, strict=True))
        else:  # a failed write puts back what it took
            got.put_back(taken[:arg])
            model.extendleft(reversed(taken[:arg]))
            taken = []
        assert len(got) == len(model)
        assert all(same(a, b) for a, b in zip(model, list(got), strict=True))
    got.clear()
    assert len(got) == 0 and list(got) == []


def test_a_plain_row_is_kept_as_its_values():
    got = Rows()
    big = 10**12 + 7  # as a response's token count: an int made for this row
    cost = math.pi
    row = (*PLAIN[:3], big, 300, cost, *PLAIN[6:])
    before = sys.getrefcount(big), sys.getrefcount(cost), sys.getrefcount(row)
    got.append(row)
    assert (sys.getrefcount(big), sys.getrefcount(cost), sys.getrefcount(row)) == before
    assert got[0] == row and got[0] is not row
    other = (*PLAIN[:8], 5, *PLAIN[9:])  # in a session: kept as it came
    got.append(other)
    assert got[1] is other


def test_the_collector_sees_items_kept_as_they_came():
    class Node:
        pass

    node = Node()
    got = Rows()
    got.append(node)
    node.rows = got  # a cycle through the Rows
    alive = weakref.ref(node)
    del node, got
    gc.collect()
    assert alive() is None


def test_rows_take_no_arguments_and_reject_bad_ones():
    with pytest.raises(TypeError):
        Rows([1])
    with pytest.raises(TypeError):
        Rows().take_flat("3")
    with pytest.raises(TypeError):
        Rows().put_back(3)
    odd = Rows()
    odd.append(("not", "a row"))
    with pytest.raises(TypeError):
        odd.take_flat(1)
    assert len(odd) == 1  # nothing taken


def test_totals_of_rows_are_those_of_a_list():
    from tokenspy import record

    items = [PLAIN, (*PLAIN[:8], 5, *PLAIN[9:]), CallRecord("f", "m", "p", 7, 8, 0.25, 1.0, 0.0),
             (*PLAIN[:3], 10**15, 3, 0.1, *PLAIN[6:])] * 50
    got = Rows()
    for item in items:
        got.append(item)
    assert record.total_cost(got) == record.total_cost(items)
    assert record.total_tokens(got) == record.total_tokens(items)
    with pytest.raises(IndexError):
        got.column(20)
