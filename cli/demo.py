"""``tongban demo``: three city nodes on loopback and two cases told end to end.

Nothing to configure: a fresh federation in a temporary folder, SQLite and the local
filesystem store, nodes on free loopback ports. Exits non-zero if any step fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from tongban.cli.federation import node_specs, write_federation
from tongban.client.hall import Applicant, CaseInfo, HallClient, Material
from tongban.client.seals import SealClient, VerificationClient
from tongban.keys.clock import utcnow
from tongban.keys.identifiers import (
    citizen_id_check_char,
    credit_code_check_char,
    organisation_code_check_char,
)
from tongban.server.app import RelayNode
from tongban.server.config import load_config

__all__ = ["SAMPLE_ORGANISATIONS", "DemoFailure", "credit_code", "free_ports", "run_demo"]

T = TypeVar("T")
NODES = ("420700", "420100", "440300")  # 鄂州, 武汉, 深圳
_console = Console(width=120)


class DemoFailure(Exception):
    pass


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise DemoFailure(f"timed out waiting for {what}")


def leg_status(
    client: HallClient, case_id: str, leg: str, status: str
) -> Callable[[], CaseInfo | None]:
    def probe() -> CaseInfo | None:
        info = client.case(case_id)
        return info if any(g.node_id == leg and g.status == status for g in info.legs) else None

    return probe


def _scan(name: str, size: int, seed: int) -> Material:
    """A stand-in scan: deterministic bytes, produced in pieces like a file read."""

    def chunks() -> object:
        block = bytes((seed + i) % 251 for i in range(4096))
        left = size
        while left > 0:
            yield block[: min(left, len(block))]
            left -= len(block)

    return Material(name, None, "image/jpeg", chunks, size)  # type: ignore[arg-type]


def start_nodes(root: Path, node_ids: tuple[str, ...] = NODES) -> tuple[dict[str, RelayNode], Path]:
    ports = free_ports(2 * len(node_ids))
    endpoints = {n: f"127.0.0.1:{p}" for n, p in zip(node_ids, ports, strict=False)}
    public = {n: f"127.0.0.1:{p}" for n, p in zip(node_ids, ports[len(node_ids) :], strict=True)}
    specs = node_specs(
        node_ids,
        base_port=0,
        host="127.0.0.1",
        endpoints=endpoints,
        names={},
        public_endpoints=public,
    )
    fed_dir = root / "federation"
    write_federation(fed_dir, specs, now=utcnow())
    nodes: dict[str, RelayNode] = {}
    for n in node_ids:
        cfg = load_config(
            fed_dir / n / "node.toml",
            environ={},
            overrides={"delivery": {"poll_interval": 0.5, "initial_backoff": 0.2}},
        )
        node = RelayNode(cfg)
        node.start()
        nodes[n] = node
    return nodes, fed_dir


def run_demo(*, keep: bool = False) -> int:
    root = Path(tempfile.mkdtemp(prefix="tongban-demo-"))
    nodes: dict[str, RelayNode] = {}
    try:
        nodes, fed = start_nodes(root)
        names = {n: nodes[n].directory.current.node(n).name for n in NODES}
        _console.print(
            "[bold]three relay nodes[/] on loopback: "
            + ", ".join(f"{names[n]} {n} :{nodes[n].port}" for n in NODES)
        )
        hall = {n: HallClient.from_profile(fed / n / "halls" / f"{n}-hall-1") for n in NODES}
        _register_seal(fed)
        timeline: list[tuple[str, str]] = []
        _on_behalf_case(
            hall, root, timeline, nodes["420100"].directory.current.node("420100").public_endpoint
        )
        _joint_case(hall, root, timeline)
        _deadline_cases(hall, nodes["420100"], root)
        for c in hall.values():
            c.close()
        _console.print("[bold green]demo complete[/]: every step verified")
        return 0
    except Exception as exc:  # any failed step ends the demo with a message, not a traceback
        _console.print(f"[bold red]demo failed[/]: {type(exc).__name__}: {exc}")
        return 1
    finally:
        for node in nodes.values():
            node.stop(grace=2)
        if keep:
            _console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _citizen() -> Applicant:
    body = "42070419900307" + "123"
    return Applicant("张三", "citizen", body + citizen_id_check_char(body))


def credit_code(kind: str, division: str, org: str) -> str:
    """A 统一社会信用代码 with valid check characters: ``kind`` (registration department and
    organisation type, "91" for a company, "11" for a government body), the division code
    of the organisation's own city and an 8-character organisation code body."""
    body = kind + division + org + organisation_code_check_char(org)
    return body + credit_code_check_char(body)


# The demo's organisations, each with its own city's division code (GB/T 2260): a 鄂州
# company applying and the 武汉 approval bureau whose seal goes on the result.
SAMPLE_ORGANISATIONS = {
    "鄂州市好味道餐饮有限公司": credit_code("91", "420700", "MA49ABCD"),
    "武汉市行政审批局行政审批专用章": credit_code("11", "420100", "MB000012"),
}


def _company() -> Applicant:
    name = "鄂州市好味道餐饮有限公司"
    return Applicant(name, "company", SAMPLE_ORGANISATIONS[name])


def _show_history(client: HallClient, case_id: str, title: str) -> None:
    items, intact = client.history(case_id)
    table = Table(title=title)
    for col in ("time (UTC)", "leg", "#", "event", "by", "signature"):
        table.add_column(col)
    for e in items:
        table.add_row(
            e.at[11:23],
            e.leg,
            str(e.seq),
            e.type,
            f"{e.actor_node}/{e.actor_hall}",
            e.signature_status,
        )
    _console.print(table)
    if not intact:
        raise DemoFailure(f"event chain of case {case_id} is not intact")


def _register_seal(fed: Path) -> None:
    now = utcnow()
    with SealClient.from_profile(fed / "420100" / "admins" / "420100-admin") as admin:
        name = "武汉市行政审批局行政审批专用章"
        info = admin.register_seal(
            "wh-approval",
            name,
            SAMPLE_ORGANISATIONS[name],
            org_name="武汉市行政审批局",
            not_before=now,
            not_after=now + timedelta(days=3 * 365),
        )
    _console.print(f"武汉 admin registered seal [bold]{info.name}[/] ({info.seal_id})")


def _verify_sealed_result(document: Path, seal: Path, root: Path, endpoint: str) -> None:
    """Check the sealed result as a bank would: OpenSSL with only the root, then tongban."""
    fed = root / "federation"
    openssl = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(seal),
            "-content",
            str(document),
            "-CAfile",
            str(fed / "public" / "root.pem"),
            "-purpose",
            "any",
            "-out",
            os.devnull,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if openssl.returncode != 0:
        raise DemoFailure(f"openssl cms -verify refused the sealed result: {openssl.stderr}")
    verifier = VerificationClient(
        endpoint,
        node_id="420100",
        root_pem=(fed / "public" / "root.pem").read_bytes(),
    )
    with verifier:
        report = verifier.verify(document, seal.read_bytes())
    if report.indication.value != "VALID":
        raise DemoFailure(f"the sealed result did not verify: {report.summary}")
    _console.print(
        f"鄂州 verified the sealed result: openssl [green]Verification successful[/], "
        f"tongban [green]{report.indication.value}[/] ({report.report.get('ecert_identifier')})"
    )


def _on_behalf_case(
    hall: dict[str, HallClient], root: Path, log: list[tuple[str, str]], verify_at: str
) -> None:
    ez, wh = hall["420700"], hall["420100"]
    _console.rule("异地代收代办: accepted in 鄂州, handled in 武汉")
    receipt = ez.submit(
        matter=("HB-ODA-01", "异地办理营业执照变更登记"),
        to=["420100"],
        applicant=_citizen(),
        form={"变更事项": "住所", "新住所": "武汉市江汉区新华路 1 号"},
        files=[_scan("身份证正反面.jpg", 300_000, 1), _scan("变更登记申请书.jpg", 300_000, 2)],
    )
    case = receipt.case_id
    _console.print(f"鄂州 hall submitted packet {receipt.packet_id} → case {case}")
    wait_for("delivery to 武汉", lambda: [i for i in wh.inbox("in") if i.case_id == case])
    got = wh.fetch(receipt.packet_id, root / "wuhan-in")
    if got.signature_status != "verified" or not all(f.verified for f in got.files):
        raise DemoFailure("武汉 could not verify the application packet")
    _console.print(
        f"武汉 fetched {len(got.files)} files, SHA-256 verified; signature {got.signature_status}"
    )
    wh.request_supplement(case, ["营业执照正本扫描件"], note="请补充营业执照正本")
    wait_for("supplement request at 鄂州", leg_status(ez, case, "420100", "supplement_requested"))
    _console.print("武汉 requested a supplement (一次性告知补正); 鄂州 sees it")
    sup = ez.supplement(case, "420100", [_scan("营业执照正本.jpg", 200_000, 3)])
    wait_for("supplement at 武汉", leg_status(wh, case, "420100", "supplemented"))
    wh.fetch(sup.packet_id, root / "wuhan-sup")
    wh.accept(case)
    wh.decide(case, approved=True, note="准予变更登记")
    result = wh.return_result(case, [_scan("准予变更登记通知书.jpg", 120_000, 4)])
    _console.print(
        "武汉 returned the result; the node sealed it with 武汉市行政审批局行政审批专用章"
    )
    wait_for("result at 鄂州", leg_status(ez, case, "420100", "result_returned"))
    fetched = ez.fetch(result.packet_id, root / "ezhou-result")
    if not all(f.verified for f in fetched.files):
        raise DemoFailure("鄂州 could not verify the result packet")
    _verify_sealed_result(fetched.files[0].path, fetched.files[1].path, root, verify_at)
    ez.issue(case, note="窗口出件")
    ez.deliver(case, note="申请人当场领取")
    wait_for("issue/deliver at 武汉", leg_status(wh, case, "420100", "delivered"))
    _show_history(ez, case, f"case {case[:8]} as 鄂州 sees it")
    log.append(("on_behalf", case))


def _deadline_cases(hall: dict[str, HallClient], wuhan: RelayNode, root: Path) -> None:
    """Two cases on 武汉's clock, moved forward: one gets a yellow card, one passes its
    promised limit and is approved by default with a sealed notice."""
    from tongban.client.verify import Indication, seal_verification_result
    from tongban.keys.pki import load_certificates
    from tongban.server.domain.deadlines import Card, schedule
    from tongban.server.usecases.clocks import pauses_of
    from tongban.storage.deadline_tables import CaseClockRow

    ez, wh = hall["420700"], hall["420100"]
    _console.rule("时限: yellow card, and approval by default on overdue (超时默认、自动用印)")
    cases = []
    for n in (1, 2):
        r = ez.submit(
            matter=("HB-ODA-01", "异地办理营业执照变更登记"),
            to=["420100"],
            applicant=_citizen(),
            form={"变更事项": "名称"},
            files=[_scan(f"申请书-{n}.jpg", 50_000, 10 + n)],
        )
        wait_for("delivery to 武汉", _arrived(wh, r.case_id))
        wh.accept(r.case_id)
        cases.append(r.case_id)
    calendar = wuhan.calendar.calendar()
    due: list[dict[Card, object]] = []
    for case in cases:
        with wuhan.metadata.read() as s:
            c = s.get(CaseClockRow, (case, "420100"))
            assert c is not None and c.accepted_at is not None
            sched = schedule(c.accepted_at, c.promised_days, c.legal_days, pauses_of(c), calendar)
        due.append({d.card: d.at for d in sched.cards})
        flag = " (uncertain: no calendar for that year)" if sched.uncertain else ""
        _console.print(
            f"case {case[:8]} accepted by 武汉: promised {c.promised_days} working days, due "
            f"{sched.due_date}{flag}"
        )
    yellow_at = due[0][Card.YELLOW]
    report = wuhan.supervision.run(yellow_at)  # type: ignore[arg-type]
    _console.print(
        f"supervision at {yellow_at}: cards {report.cards} - case {cases[0][:8]} is "
        "[bold yellow]yellow[/]"
    )
    overdue_at = due[1][Card.OVERDUE]
    report = wuhan.supervision.run(overdue_at)  # type: ignore[arg-type]
    if report.approved_by_default < 1:
        raise DemoFailure(f"no approval by default at {overdue_at}: {report.alerts}")
    wait_for("the notice at 鄂州", leg_status(ez, cases[1], "420100", "result_returned"))
    packet = next(i for i in ez.inbox("in") if i.case_id == cases[1] and i.kind == "result")
    got = ez.fetch(packet.packet_id, root / "ezhou-notice")
    notice = got.files[0].path
    roots = load_certificates((root / "federation" / "public" / "root.pem").read_bytes())
    verdict = seal_verification_result(
        notice,
        roots=roots,
        seals=wuhan.seals.registered_seals(),
        at=overdue_at,  # type: ignore[arg-type]
    )
    if verdict.indication is not Indication.VALID:
        raise DemoFailure(f"the default-approval notice does not verify: {verdict.summary}")
    _console.print(
        f"case {cases[1][:8]} passed its promised limit: 武汉 approved it by default, sealed "
        f"默认许可决定书 ({verdict.ecert_identifier}) and returned it; 鄂州 verified it: "
        f"[bold green]{verdict.indication.value}[/]"
    )
    _show_history(ez, cases[1], f"case {cases[1][:8]} as 鄂州 sees it")


def _arrived(client: HallClient, case_id: str) -> Callable[[], list[object]]:
    return lambda: [i for i in client.inbox("in") if i.case_id == case_id]


def _if_all_legs(info: CaseInfo, status: str) -> CaseInfo | None:
    return info if all(g.status == status for g in info.legs) else None


def _joint_case(hall: dict[str, HallClient], root: Path, log: list[tuple[str, str]]) -> None:
    ez = hall["420700"]
    _console.rule("多地联办: 我要开饭店, one acceptance in 鄂州, legs in 武汉 and 深圳")
    r = ez.submit(
        matter=("HB-2020-09", "我要开饭店"),
        to=["420100", "440300"],
        departments=["市场监管", "税务"],
        applicant=_company(),
        form={"店名": "好味道", "经营面积": 120},
        files=[_scan("营业场所平面图.jpg", 250_000, 5)],
    )
    case = r.case_id
    for node in ("420100", "440300"):
        c = hall[node]
        wait_for(f"delivery to {node}", _arrived(c, case))
        got = c.fetch(r.packet_id, root / f"{node}-joint")
        if not all(f.verified for f in got.files):
            raise DemoFailure(f"{node} could not verify the joint packet")
        c.accept(case)
    mid = wait_for(
        "both legs accepted at 鄂州",
        lambda: _if_all_legs(ez.case(case), "accepted"),
    )
    _console.print(f"aggregate after acceptance: {mid.status} (complete={mid.complete})")
    for node in ("420100", "440300"):
        hall[node].decide(case, approved=True)
    done = wait_for(
        "both legs decided at 鄂州", lambda: i if (i := ez.case(case)).complete else None
    )
    _console.print(
        f"aggregate: {done.status} (complete={done.complete}); legs: "
        + ", ".join(f"{g.node_id} {g.department} {g.status}/{g.decision}" for g in done.legs)
    )
    _show_history(ez, case, f"joint case {case[:8]} as 鄂州 sees it")
    log.append(("joint", case))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(run_demo(keep=bool(os.environ.get("TONGBAN_DEMO_KEEP"))))
