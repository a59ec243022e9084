"""Per-case order under faults: several items of each case queued while a node is killed.

Each case goes the whole way — application, supplement request, supplement, acceptance,
decision, result — and while the items of one direction are queued, the node they go to is
killed with SIGKILL and restarted again and again. Every item must arrive once, in order.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.faults.rig import FaultRig
from tests.harness import citizen_id, register_seal, wait_until
from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant, HallClient, Material

pytestmark = pytest.mark.slow

A, B = "420700", "420100"  # A accepts for the applicant, B handles
CASES = 6
ORDER = [
    "submitted",
    "supplement_requested",
    "supplemented",
    "accepted",
    "decided",
    "result_returned",
]


def _material(name: str, seed: str) -> tuple[Material, str]:
    data = hashlib.sha256(seed.encode()).digest() * 4096  # 128 KiB
    return Material(name, None, "application/octet-stream", lambda: iter([data]), len(data)), (
        hashlib.sha256(data).hexdigest()
    )


@contextmanager
def killing(rig: FaultRig, node: str, seed: int) -> Iterator[list[int]]:
    """kill -9 ``node`` and restart it, again and again, until the block ends."""
    stop = threading.Event()
    kills: list[int] = []
    rng = random.Random(seed)

    def run() -> None:
        while True:
            time.sleep(0.1 + rng.random() * 0.5)
            rig.nodes[node].start()
            if stop.wait(0.3 + rng.random()):
                return
            rig.nodes[node].kill9()
            kills.append(1)

    # The first kill before the items are made: they queue while the node is down.
    rig.nodes[node].kill9()
    kills.append(1)
    killer = threading.Thread(target=run, daemon=True)
    killer.start()
    try:
        yield kills
    finally:
        stop.set()
        killer.join(120)
        if not rig.nodes[node].running:
            rig.nodes[node].start()


def _all(hall: HallClient, cases: list[str], status: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return all(hall.case(c).legs[0].status == status for c in cases)
        except RequestRefused:  # not arrived yet
            return False

    return probe


def test_every_item_of_every_case_arrives_once_in_order_while_nodes_are_killed(
    tmp_path: Path,
) -> None:
    rig = FaultRig(tmp_path, "sqlite+fs")
    try:
        rig.start()
        register_seal(rig.cluster, B)  # every result goes out sealed, or not at all
        ez, wh = rig.hall(A), rig.hall(B)
        applicant = Applicant("张三", "citizen", citizen_id())
        sent: dict[str, list[tuple[str, str]]] = {}  # case -> [(packet id, file digest)]
        results: dict[str, tuple[str, str]] = {}
        with killing(rig, B, 1) as kills_b:
            for n in range(CASES):
                m, sha = _material("application.bin", f"app{n}")
                r = ez.submit(
                    matter=("HB-ODA-01", "异地办理营业执照变更登记"),
                    to=[B],
                    applicant=applicant,
                    form={"n": n},
                    files=[m],
                )
                sent[r.case_id] = [(r.packet_id, sha)]
        cases = list(sent)
        wait_until("the applications at B", _all(wh, cases, "submitted"), timeout=120)
        with killing(rig, A, 2) as kills_a:
            for case in cases:
                wh.request_supplement(case, ["营业执照正本"])
        wait_until("the requests at A", _all(ez, cases, "supplement_requested"), timeout=120)
        with killing(rig, B, 3) as more_b:
            for case in cases:
                m, sha = _material("licence.bin", f"sup{case}")
                r = ez.supplement(case, B, [m])
                sent[case].append((r.packet_id, sha))
        wait_until("the supplements at B", _all(wh, cases, "supplemented"), timeout=120)
        # Three items of each case queued one behind the other: two events and a packet.
        with killing(rig, A, 4) as more_a:
            for case in cases:
                wh.accept(case)
                wh.decide(case, approved=True, note="准予")
                m, sha = _material("permit.bin", f"res{case}")
                results[case] = (wh.return_result(case, [m]).packet_id, sha)
        wait_until("the results at A", _all(ez, cases, "result_returned"), timeout=180)
        assert kills_a and kills_b and more_a and more_b  # the faults did happen

        for case in cases:
            for hall in (ez, wh):
                history, intact = hall.history(case)
                assert intact, case
                assert [e.type for e in history] == ORDER, case
        in_b = [i.packet_id for i in wh.inbox("in", limit=1000)]
        assert sorted(in_b) == sorted(p for items in sent.values() for p, _ in items)
        in_a = [i.packet_id for i in ez.inbox("in", limit=1000)]
        assert sorted(in_a) == sorted(p for p, _ in results.values())
        for hall, packets in (
            (wh, [x for v in sent.values() for x in v]),
            (ez, list(results.values())),
        ):
            for packet_id, sha in packets:
                got = hall.fetch(packet_id, tmp_path / "got" / packet_id)
                assert got.files[0].verified and got.files[0].sha256 == sha
        ez.close()
        wh.close()
    finally:
        rig.close()
