"""``tongban calendar``, ``tongban matters`` and ``tongban supervise``: node administration
of working days, matters and deadlines.

They run on the node's host with its configuration (``--config node.toml``) and work on
its database directly, as the running node does; every change is recorded with the
acting user. Exit codes: 0 done, 1 refused (the message says why; nothing was changed),
2 the command cannot run (no such file, a bad argument).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from tongban.keys.clock import utcnow
from tongban.server.domain.errors import RelayError
from tongban.server.domain.matters import MatterCatalog, MatterError
from tongban.server.usecases.calendar_book import CalendarBook
from tongban.server.usecases.matter_book import MatterBook, MatterVersion
from tongban.storage.sql import MetadataStore, open_metadata_store

__all__ = ["EXIT_REFUSED", "EXIT_USAGE", "add_deadline_parsers", "open_node_store"]

EXIT_REFUSED = 1
EXIT_USAGE = 2


def _fail(command: str, message: str, code: int) -> int:
    print(f"tongban {command}: {message}", file=sys.stderr)
    return code


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextmanager
def open_node_store(config: str) -> Iterator[tuple[MetadataStore, Any]]:
    """The node's metadata store (migrated) and its configuration."""
    from tongban.server.config import load_config

    cfg = load_config(Path(config))
    store = open_metadata_store(cfg.database)
    try:
        yield store, cfg
    finally:
        store.close()


def _books(store: MetadataStore, cfg: Any) -> tuple[CalendarBook, MatterBook]:
    calendar = CalendarBook(metadata=store, clock=utcnow)
    calendar.seed_from_package()
    matters = MatterBook(metadata=store, clock=utcnow)
    matters.seed(
        MatterCatalog.from_file(cfg.matters) if cfg.matters else MatterCatalog.load_default()
    )
    return calendar, matters


def _guarded(command: str, work: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return work(args)
        except (RelayError, MatterError) as exc:
            return _fail(command, exc.message, EXIT_REFUSED)
        except OSError as exc:
            return _fail(command, str(exc), EXIT_USAGE)

    return run


# ---- calendar ---------------------------------------------------------------------------


def _calendar_show(args: argparse.Namespace) -> int:
    with open_node_store(args.config) as (store, cfg):
        calendar, _ = _books(store, cfg)
        view = calendar.show(args.year)
    if args.json:
        print(
            json.dumps(
                {
                    "year": view.year,
                    "known": view.known,
                    "source": view.source,
                    "days": [
                        {"date": d.day.isoformat(), "kind": d.kind.value, "name": d.name}
                        for d in view.days
                    ],
                },
                ensure_ascii=False,
            )
        )
        return 0
    if view.known:
        print(f"{view.year}: known (from {view.source})")
    else:
        print(
            f"{view.year}: NOT KNOWN - deadlines in {view.year} are counted on weekends only "
            "and shown as uncertain"
        )
    for d in view.days:
        print(f"{d.day.isoformat()} {d.day.strftime('%a')} {d.kind.value:8} {d.name}")
    return 0


def _calendar_import(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    with open_node_store(args.config) as (store, cfg):
        calendar, _ = _books(store, cfg)
        years = calendar.import_file(data, source=args.file, actor=_actor())
    print(f"calendar years {', '.join(map(str, years))} imported from {args.file}")
    return 0


def _calendar_set(args: argparse.Namespace) -> int:
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        return _fail("calendar set", f"{args.date!r} is not a date (YYYY-MM-DD)", EXIT_USAGE)
    with open_node_store(args.config) as (store, cfg):
        calendar, _ = _books(store, cfg)
        result = calendar.set_day(day, args.kind, name=args.name, actor=_actor())
    print(f"{result.day.isoformat()} is now a {result.kind.value}")
    return 0


# ---- matters ----------------------------------------------------------------------------


def _limit(days: int) -> str:
    return "即办 (same day)" if days == 0 else f"{days} working days"


def _print_matter(v: MatterVersion) -> None:
    m = v.matter
    print(f"{m.code} {m.name} (version {v.version}, {v.changed_at:%Y-%m-%d} by {v.changed_by})")
    print(f"  lead: {m.lead}; cooperating: {', '.join(m.cooperating) or '-'}")
    print(f"  promised: {_limit(m.promised_days)}; legal: {_limit(m.legal_days)}")
    print(f"  exempt from approval on overdue: {'yes' if m.exempt else 'no'}")
    print(f"  deferrable materials (容缺): {', '.join(m.deferrable) or '-'}")


def _matters_list(args: argparse.Namespace) -> int:
    with open_node_store(args.config) as (store, cfg):
        _, matters = _books(store, cfg)
        rows = matters.all()
    if args.json:
        print(
            json.dumps(
                [{**v.matter.to_json(), "version": v.version} for v in rows], ensure_ascii=False
            )
        )
        return 0
    for v in rows:
        m = v.matter
        exempt = " exempt" if m.exempt else ""
        print(
            f"{m.code:12} v{v.version:<3} {m.promised_days:>3}/{m.legal_days:<3}{exempt} {m.name}"
        )
    return 0


def _matters_show(args: argparse.Namespace) -> int:
    with open_node_store(args.config) as (store, cfg):
        _, matters = _books(store, cfg)
        history = matters.history(args.code)
    _print_matter(history[-1])
    print("  notice template:")
    for line in history[-1].matter.notice.splitlines():
        print(f"    {line}")
    print("  versions:")
    for v in history:
        print(f"    {v.version} {v.changed_at:%Y-%m-%d %H:%M} by {v.changed_by}")
    return 0


def _matters_set(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    for key in ("name", "lead", "promised_days", "legal_days", "exempt"):
        value = getattr(args, key)
        if value is not None:
            changes[key] = value
    if args.deferrable is not None:
        changes["deferrable"] = [m for m in args.deferrable if m]
    if args.notice_template is not None:
        changes["notice_template"] = Path(args.notice_template).read_text(encoding="utf-8")
    if not changes:
        return _fail("matters set", "nothing to change", EXIT_USAGE)
    with open_node_store(args.config) as (store, cfg):
        _, matters = _books(store, cfg)
        v = matters.set(args.code, changes, actor=_actor())
    _print_matter(v)
    return 0


def _matters_import(args: argparse.Namespace) -> int:
    data = Path(args.file).read_bytes()
    with open_node_store(args.config) as (store, cfg):
        _, matters = _books(store, cfg)
        changed = matters.import_json(data, source=args.file, actor=_actor())
    for v in changed:
        print(f"{v.matter.code} now version {v.version}")
    print(f"{len(changed)} matters changed")
    return 0


# ---- supervise --------------------------------------------------------------------------

_STYLE = {"yellow": "bold yellow", "red": "bold red", "overdue": "bold white on red", "": ""}


def _supervise(args: argparse.Namespace) -> int:
    from tongban.keys.clock import parse_time
    from tongban.server.app import RelayNode
    from tongban.server.config import load_config

    if args.card and args.card not in ("yellow", "red", "overdue"):
        return _fail("supervise", f"--card is yellow, red or overdue, not {args.card!r}", 2)
    try:
        now = parse_time(args.at) if args.at else utcnow()
    except ValueError as exc:
        return _fail("supervise", f"--at: {exc}", EXIT_USAGE)
    node = RelayNode(load_config(Path(args.config)))
    try:
        report = node.supervision.run(now) if args.run_now else None
        legs = node.supervision.listing(now, hall=args.hall, matter=args.matter, card=args.card)
    finally:
        node.peers.close()
        node.objects.close()
        node.metadata.close()
    if args.json:
        doc: dict[str, Any] = {
            "at": now.isoformat(),
            "cases": [
                {
                    "case_id": leg.case_id,
                    "leg": leg.leg_node,
                    "matter": leg.matter_code,
                    "handling_hall": leg.handling_hall,
                    "accepting_hall": leg.accepting_hall,
                    "state": leg.state,
                    "card": leg.card,
                    "due_date": leg.due_date.isoformat() if leg.due_date else None,
                    "legal_due_date": (
                        leg.legal_due_date.isoformat() if leg.legal_due_date else None
                    ),
                    "remaining_working_days": leg.remaining_working_days,
                    "uncertain": leg.uncertain,
                    "alert": leg.alert,
                }
                for leg in legs
            ],
        }
        if report is not None:
            doc["pass"] = {
                "woken": report.woken,
                "cards": report.cards,
                "deemed_accepted": report.deemed_accepted,
                "approved_by_default": report.approved_by_default,
                "escalated": report.escalated,
                "alerts": report.alerts,
            }
        print(json.dumps(doc, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # a file or a pipe: whole lines, no colours
    if report is not None:
        cards = ", ".join(f"{k} {v}" for k, v in sorted(report.cards.items())) or "no cards"
        console.print(
            f"pass at {now.isoformat()}: {report.woken} woken; {cards}; "
            f"{report.deemed_accepted} deemed accepted; {report.approved_by_default} approved "
            f"by default; {report.escalated} escalated"
        )
        for alert in report.alerts:
            console.print(f"[bold red]alert[/]: {alert}")
    table = Table("case", "leg", "matter", "hall", "state", "card", "due", "left", "note")
    for leg in legs:
        left = "-" if leg.remaining_working_days is None else str(leg.remaining_working_days)
        note = "UNCERTAIN (no calendar)" if leg.uncertain else ""
        if leg.alert:
            note = f"{note} {leg.alert}".strip()
        table.add_row(
            leg.case_id[:8],
            leg.leg_node,
            leg.matter_code,
            leg.handling_hall,
            leg.state,
            f"[{_STYLE[leg.card]}]{leg.card or '-'}[/]" if leg.card else "-",
            leg.due_date.isoformat() if leg.due_date else "-",
            left,
            note,
        )
    console.print(table)
    return 0


def _bool(text: str) -> bool:
    if text in ("yes", "true"):
        return True
    if text in ("no", "false"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not yes or no")


def add_deadline_parsers(subparsers: Any) -> None:
    """Register ``calendar``, ``matters`` and ``supervise`` under the ``tongban`` command."""

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", required=True, help="the node's node.toml")
        return p

    cal = subparsers.add_parser("calendar", help="the node's working-day calendar")
    cal_sub = cal.add_subparsers(dest="action", required=True)
    show = with_config(cal_sub.add_parser("show", help="holidays and make-up days of a year"))
    show.add_argument("year", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_guarded("calendar show", _calendar_show))
    imp = with_config(cal_sub.add_parser("import", help="complete years from a JSON file"))
    imp.add_argument("file")
    imp.set_defaults(handler=_guarded("calendar import", _calendar_import))
    setp = with_config(cal_sub.add_parser("set", help="make one date a holiday or a workday"))
    setp.add_argument("date")
    setp.add_argument("kind", help="workday or holiday")
    setp.add_argument("--name", default="", help="e.g. 国庆节调休")
    setp.set_defaults(handler=_guarded("calendar set", _calendar_set))

    mat = subparsers.add_parser("matters", help="the node's matter catalogue and limits")
    mat_sub = mat.add_subparsers(dest="action", required=True)
    lst = with_config(mat_sub.add_parser("list", help="every matter with its limits"))
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=_guarded("matters list", _matters_list))
    shw = with_config(mat_sub.add_parser("show", help="one matter and its versions"))
    shw.add_argument("code")
    shw.set_defaults(handler=_guarded("matters show", _matters_show))
    st = with_config(mat_sub.add_parser("set", help="change a matter (a new version)"))
    st.add_argument("code")
    st.add_argument("--name")
    st.add_argument("--lead")
    st.add_argument("--promised-days", type=int, dest="promised_days")
    st.add_argument("--legal-days", type=int, dest="legal_days")
    st.add_argument("--exempt", type=_bool, help="yes or no")
    st.add_argument("--deferrable", action="append", help="a deferrable material; repeat")
    st.add_argument("--notice-template", dest="notice_template", help="template file")
    st.set_defaults(handler=_guarded("matters set", _matters_set))
    mi = with_config(mat_sub.add_parser("import", help="add or change matters from JSON"))
    mi.add_argument("file")
    mi.set_defaults(handler=_guarded("matters import", _matters_import))

    sup = with_config(
        subparsers.add_parser(
            "supervise",
            help="open cases with their cards and remaining working days",
            description="List the node's open case legs, most urgent first, with their card "
            "colour and remaining working days; with --run-now, first issue what fell due "
            "(cards, deemed acceptance, approval by default).",
        )
    )
    sup.add_argument("--hall", default="", help="only cases of this hall (either side)")
    sup.add_argument("--matter", default="", help="only this matter code")
    sup.add_argument("--card", default="", help="yellow, red or overdue")
    sup.add_argument("--json", action="store_true")
    sup.add_argument("--run-now", action="store_true", help="run a supervision pass first")
    sup.add_argument("--at", help="the time to supervise at (RFC 3339), default now")
    sup.set_defaults(handler=_guarded("supervise", _supervise))
