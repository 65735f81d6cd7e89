"""The hash-chained ledger: appends are durable and chained; any edit is detected."""

from __future__ import annotations

import json

import pytest

from privtangent.io.hashing import sha256_bytes
from privtangent.shards.ledger import GENESIS, Ledger, LedgerError, canonical


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger.jsonl")
    led.append("create", after="a" * 64, num_shards=3)
    for request in (1, 2):
        led.append("begin", request=request, mode="remove", num_ids=2, ids_sha256=f"{request}" * 64, before="b")
        led.append("commit", request=request, mode="remove", before="b", after="c")
    return led


def lines(led):
    return led.path.read_text().splitlines()


def write(led, rows):
    led.path.write_text("\n".join(rows) + "\n")


def test_chain_links_each_line_to_the_previous_one(ledger):
    rows = lines(ledger)
    records = [json.loads(r) for r in rows]
    assert records[0]["prev"] == GENESIS
    for i in range(1, len(rows)):
        assert records[i]["prev"] == sha256_bytes(rows[i - 1].encode())
        assert records[i]["seq"] == i
    assert ledger.verify().ok and ledger.head() == sha256_bytes(rows[-1].encode())
    assert [r["type"] for r in ledger.records()] == ["create", "begin", "commit", "begin", "commit"]
    assert all(r == canonical(json.loads(r)) for r in rows)


@pytest.mark.parametrize("edit, where", [
    (lambda rows: rows.__setitem__(1, rows[1].replace('"num_ids":2', '"num_ids":3')), "line 2"),
    (lambda rows: rows.__setitem__(4, rows[4].replace('"after":"c"', '"after":"d"')), "line 5"),  # the last line
    (lambda rows: rows.pop(2), "line 3"),
    (lambda rows: rows.insert(2, rows[1]), "line 3"),
    (lambda rows: rows.__setitem__(slice(1, 3), [rows[2], rows[1]]), "line 2"),
    (lambda rows: rows.__setitem__(0, rows[0].replace(":", ": ", 1)), "line 1"),
    (lambda rows: rows.__setitem__(3, "{not json"), "line 4"),
])
def test_tampered_lines_are_detected(ledger, edit, where):
    rows = lines(ledger)
    edit(rows)
    write(ledger, rows)
    check = ledger.verify()
    assert not check.ok
    assert any(where in p for p in check.problems), check.problems
    with pytest.raises(LedgerError):
        ledger.append("begin", request=3)


def test_a_consistently_rewritten_tail_is_caught_by_a_published_head(ledger):
    head = ledger.head()
    rows = lines(ledger)[:3]  # the last request cut off: the chain itself is still valid
    write(ledger, rows)
    assert ledger.verify().ok
    check = ledger.verify(head=head)
    assert not check.ok and "published head" in check.problems[0]


def test_a_torn_last_line_is_reported_and_can_be_cut(ledger):
    good = ledger.path.read_bytes()
    ledger.path.write_bytes(good + b'{"seq":5,"prev":"')
    check = ledger.verify()
    assert check.torn_tail and "incomplete" in check.problems[0]
    assert ledger.repair_torn_tail()
    assert ledger.path.read_bytes() == good and ledger.verify().ok
    assert not ledger.repair_torn_tail()


def test_append_is_durable_and_rejects_reserved_fields(tmp_path):
    led = Ledger(tmp_path / "sub" / "ledger.jsonl")
    assert not led.exists() and led.verify().ok and led.head() == GENESIS
    record = led.append("create", after="x")
    assert record["seq"] == 0 and led.path.read_bytes().endswith(b"\n")
    with pytest.raises(ValueError):
        led.append("create", seq=4)
    with pytest.raises(ValueError):
        led.append("rewrite")
