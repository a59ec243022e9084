"""The short fault runs: each fault on each storage set-up it applies to, ledger reconciled.

The long soak is ``python bench/faults.py``; it runs the same faults longer and prints the
table the README shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.rig import FAULTS, SETUPS, FaultRig, run_fault
from tests.pg_instance import PostgresInstance
from tests.s3server import S3Server

pytestmark = pytest.mark.slow

SIZES = (16 << 10, 1 << 20, 6 << 20)
CASES = [
    pytest.param(
        fault, setup, id=f"{fault}-{setup}", marks=[pytest.mark.s3] if "s3" in setup else []
    )
    for fault, (setups, _) in FAULTS.items()
    for setup in SETUPS
    if setup in setups
]


@pytest.fixture
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FaultRig]:
    setup: str = request.node.callspec.params["setup"]
    pg: PostgresInstance | None = None
    s3: S3Server | None = None
    if setup == "pg+s3":
        s3 = request.getfixturevalue("s3_server")
        pg = PostgresInstance()
        pg.start()
    made = FaultRig(tmp_path, setup, s3=s3, pg=pg)
    try:
        yield made
    finally:
        made.close()
        if pg is not None:
            pg.remove()


@pytest.mark.parametrize(("fault", "setup"), CASES)
def test_fault_loses_nothing_doubles_nothing_leaves_nothing(
    rig: FaultRig, fault: str, setup: str
) -> None:
    outcome = run_fault(rig, fault, scale=0.5, sizes=SIZES)
    print(outcome.row())
    assert outcome.acknowledged > 0
    assert (outcome.lost, outcome.duplicated, outcome.wrong_bytes, outcome.leftovers) == (
        0,
        0,
        0,
        0,
    ), outcome.row()
    assert outcome.delivered == outcome.acknowledged
