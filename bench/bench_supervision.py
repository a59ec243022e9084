"""A supervision pass over many open cases, against the number of cases that change.

Run: ``.venv/bin/python bench/bench_supervision.py [--cases 100000] [--due 0,100,1000]``

A node's SQLite database is filled with ``--cases`` open, accepted case legs (case, leg and
clock rows), of which the given numbers have a yellow card due; the rest fall due later.
Then, per count of due cases, one pass (:meth:`Supervision.run`) issues their cards: a
signed event, an outbox row and a card row each. Figures, all from this run:

- pass time with N open and K due, and the same K over a table of 1 000 open cases: the
  ratio says whether the open cases the pass does not touch cost anything (an index on
  ``wake_at`` reads only the due ones);
- the cost per changed case, against the floor of one card: signing one event statement
  (Ed25519/ECDSA as the node's key is) and inserting its rows, measured alone;
- a full scan for comparison: reading every open clock and computing its schedule, which
  is what a pass without the index would do before changing anything;
- peak RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from tongban.cli.demo import free_ports
from tongban.cli.federation import node_specs, write_federation
from tongban.keys.clock import utcnow
from tongban.server.app import RelayNode
from tongban.server.config import load_config
from tongban.server.domain.deadlines import Card, schedule
from tongban.server.usecases.calendar_book import CalendarBook
from tongban.server.usecases.clocks import pauses_of
from tongban.storage.deadline_tables import CaseClockRow
from tongban.storage.sql import CaseRow, LegRow

MATTER = "HB-ODA-02"


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def make_node(root: Path, cases: int) -> RelayNode:
    ports = free_ports(2)
    specs = node_specs(
        ("420700", "420100"),
        base_port=0,
        host="127.0.0.1",
        endpoints={"420700": f"127.0.0.1:{ports[0]}", "420100": f"127.0.0.1:{ports[1]}"},
        names={},
    )
    write_federation(root / "fed", specs, now=utcnow())
    cfg = load_config(
        root / "fed" / "420100" / "node.toml",
        environ={},
        overrides={"storage": {"database": f"sqlite:///{root / f'meta-{cases}.db'}"}},
    )
    return RelayNode(cfg)


def fill(node: RelayNode, total: int, due: int, now: datetime) -> None:
    """``total`` accepted legs; ``due`` of them were accepted long enough ago to be yellow."""
    with node.metadata.read() as session:
        calendar = CalendarBook.calendar_in(session)
    promised, legal = 10, 20
    past = now - timedelta(days=9)
    yellow_at = {c.card: c.at for c in schedule(past, promised, legal, [], calendar).cards}[
        Card.YELLOW
    ]
    assert yellow_at <= now, "the past acceptance must make the yellow card due"
    future = {c.card: c.at for c in schedule(now, promised, legal, [], calendar).cards}[Card.YELLOW]
    cases, legs, clocks = [], [], []
    for i in range(total):
        case_id = str(uuid.UUID(int=i + 1))
        is_due = i < due
        accepted = past if is_due else now
        cases.append(
            {
                "case_id": case_id,
                "mode": "on_behalf",
                "matter_code": MATTER,
                "matter_name": "异地申领社会保障卡补换",
                "accepting_node": "420700",
                "accepting_hall": "420700-hall-1",
                "created_at": accepted,
            }
        )
        legs.append(
            {
                "case_id": case_id,
                "node_id": "420100",
                "hall_id": "420100-hall-1",
                "department": "人社",
                "status": "accepted",
                "decision": "",
                "supplement_requests": 0,
                "head_hash": "0" * 64,
                "head_seq": 2,
                "updated_at": accepted,
            }
        )
        clocks.append(
            {
                "case_id": case_id,
                "leg_node": "420100",
                "matter_code": MATTER,
                "matter_version": 1,
                "handling_hall": "420100-hall-1",
                "accepting_node": "420700",
                "accepting_hall": "420700-hall-1",
                "promised_days": promised,
                "legal_days": legal,
                "exempt": False,
                "received_at": accepted,
                "accepted_at": accepted,
                "pauses": "[]",
                "deferred": "",
                "state": "running",
                "cards": "",
                "due_at": None,
                "legal_due_at": None,
                "uncertain": False,
                "wake_at": yellow_at if is_due else future + timedelta(seconds=i),
                "alert": "",
            }
        )
    with node.metadata.transaction() as session:
        for table, rows in ((CaseRow, cases), (LegRow, legs), (CaseClockRow, clocks)):
            for start in range(0, len(rows), 5000):
                session.execute(insert(table), rows[start : start + 5000])


def timed(action: object) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()  # type: ignore[operator]
    return time.perf_counter() - start, result


def scan(node: RelayNode) -> float:
    """Read every open clock and compute its schedule: the work an index avoids."""
    start = time.perf_counter()
    with node.metadata.read() as session:
        calendar = CalendarBook.calendar_in(session)
        for row in session.scalars(select(CaseClockRow)):
            assert row.accepted_at is not None
            schedule(row.accepted_at, row.promised_days, row.legal_days, pauses_of(row), calendar)
    return time.perf_counter() - start


def floor_per_card(node: RelayNode, n: int) -> float:
    """Signing one event statement the size of a card's and inserting three rows alone."""
    from tongban.keys.envelope import sign_envelope
    from tongban.server.domain.statements import EVENT_TYPE

    payload = json.dumps({"detail": {"card": "yellow", "due_at": "x" * 27}, "pad": "y" * 300})
    signer = node.keys.signer(utcnow())
    start = time.perf_counter()
    for _ in range(n):
        sign_envelope(payload.encode(), EVENT_TYPE, [signer])
    return (time.perf_counter() - start) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--due", default="0,100,1000")
    args = parser.parse_args()
    due_counts = [int(d) for d in args.due.split(",")]
    now = utcnow()
    results: dict[str, object] = {"cases": args.cases, "runs": []}
    with tempfile.TemporaryDirectory(prefix="tongban-bench-sup-") as tmp:
        root = Path(tmp)
        node: RelayNode | None = None
        runs = []
        for total in (1000, args.cases):
            for due in due_counts:
                if due > total:
                    continue
                if node is not None:
                    node.metadata.close()
                sub = root / f"{total}-{due}"
                sub.mkdir()
                node = make_node(sub, total)
                node.supervision.offer_delivery = lambda items: None  # no peer runs here
                fill(node, total, due, now)
                seconds, report = timed(lambda n=node: n.supervision.run(now))
                changed = sum(report.cards.values())  # type: ignore[attr-defined]
                assert changed == due, (changed, due)
                runs.append({"open": total, "due": due, "seconds": seconds})
                print(f"pass: {total:>7} open, {due:>5} due: {seconds * 1000:9.1f} ms", flush=True)
        assert node is not None
        scan_seconds = scan(node)
        per_card_floor = floor_per_card(node, 500)
        node.metadata.close()
    big = {r["due"]: r["seconds"] for r in runs if r["open"] == args.cases}
    small = {r["due"]: r["seconds"] for r in runs if r["open"] == 1000}
    k = max(d for d in due_counts if d in big and d in small and d > 0)
    per_case = (big[k] - big.get(0, 0.0)) / k
    summary = {
        "open": args.cases,
        "due": k,
        "pass_seconds": big[k],
        "empty_pass_seconds": big.get(0),
        "same_due_over_1000_open_seconds": small[k],
        "ratio_pass_to_pass_over_1000_open": big[k] / small[k],
        "per_changed_case_ms": per_case * 1000,
        "floor_signature_per_case_ms": per_card_floor * 1000,
        "ratio_per_case_to_signature": per_case / per_card_floor,
        "full_scan_seconds": scan_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }
    results["runs"] = runs
    results["summary"] = summary
    print()
    print(f"{args.cases} open cases, {k} change state:")
    print(f"  pass                          {big[k]:8.3f} s")
    print(f"  same {k} over 1000 open        {small[k]:8.3f} s  (ratio {big[k] / small[k]:.2f})")
    print(f"  pass with nothing due         {big.get(0, float('nan')):8.3f} s")
    print(f"  per changed case              {per_case * 1000:8.2f} ms")
    print(
        f"  floor: one event signature    {per_card_floor * 1000:8.2f} ms"
        f"  (ratio {per_case / per_card_floor:.1f})"
    )
    print(f"  full scan of {args.cases} clocks  {scan_seconds:8.3f} s (what the index avoids)")
    print(f"  peak RSS                      {peak_rss_mib():8.1f} MiB")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    results.update(commit=commit, python=platform.python_version())
    path = out / f"supervision-{datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
