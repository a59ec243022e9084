"""The fault soak: every fault, longer and under more load, on both storage set-ups.

Usage (from the repository root, after ``bash scripts/setup.sh --with-test-deps``)::

    .venv/bin/python bench/faults.py               # scale 3: about 20 minutes
    .venv/bin/python bench/faults.py --scale 1 --only "kill -9"

Each run starts two node processes, a hall's load and the fault, then reconciles the ledger
of acknowledged submits with what the receiving node holds (tests/faults/rig.py) and prints
one row of the table: lost, duplicated, wrong bytes, out of order and leftovers must all be 0.
The exit status is 1 if any row is not clean.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.rig import FAULTS, SETUPS, TABLE_HEAD, FaultRig, Outcome, run_fault
from tests.pg_instance import PostgresInstance
from tests.s3server import S3Server, start_s3_server

SIZES = (16 << 10, 256 << 10, 1 << 20, 8 << 20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=3.0, help="fault length and rounds")
    parser.add_argument("--only", default="", help="run the faults whose name contains this")
    parser.add_argument("--setup", choices=SETUPS, action="append", help="storage set-ups")
    args = parser.parse_args()
    setups = tuple(args.setup or SETUPS)
    outcomes: list[Outcome] = []
    s3: S3Server | None = None
    work = Path(tempfile.mkdtemp(prefix="tongban-faults-"))
    started = time.monotonic()
    try:
        if "pg+s3" in setups:
            s3 = start_s3_server(work / "s3")
        print(TABLE_HEAD, flush=True)
        for setup in setups:
            for name, (applies, _) in FAULTS.items():
                if setup not in applies or args.only not in name:
                    continue
                pg = None
                if setup == "pg+s3":
                    pg = PostgresInstance()
                    pg.start()
                rig = FaultRig(work / f"run{len(outcomes)}", setup, s3=s3, pg=pg)
                try:
                    outcome = run_fault(rig, name, scale=args.scale, sizes=SIZES)
                finally:
                    rig.close()
                    if pg is not None:
                        pg.remove()
                outcomes.append(outcome)
                print(outcome.row(), flush=True)
    finally:
        if s3 is not None:
            s3.stop()
    clean = all(o.clean and o.delivered == o.acknowledged for o in outcomes)
    print(
        f"\n{len(outcomes)} runs in {time.monotonic() - started:.0f} s: "
        f"{'all clean' if clean else 'NOT CLEAN'} (logs under {work})"
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
