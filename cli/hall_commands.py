"""``tongban hall …``: the hall SDK from the command line."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from tongban.client.errors import HallClientError
from tongban.client.hall import Applicant, HallClient
from tongban.keys.errors import KeysError

__all__ = ["add_hall_parser"]

_console = Console()
# Progress goes to stderr, as pip's and curl's do: stdout keeps the results (and a refusal's
# one line) for scripts and for copying.
_progress_console = Console(stderr=True)


class UsageError(Exception):
    """A mistake in the command line or its files, said in one line with its fix."""


_HALL_FILES = ("hall.toml", "cert.pem", "key.pem", "root.pem")
_HALL_FOLDER = (
    "a hall folder written by `tongban federation init`, e.g. fed/420700/halls/420700-hall-1"
)


def _client(args: argparse.Namespace) -> HallClient:
    given = "--profile" if args.profile else "TONGBAN_HALL"
    profile = args.profile or os.environ.get("TONGBAN_HALL")
    if not profile:
        raise UsageError(
            f"no hall folder: give --profile HALL_FOLDER or set TONGBAN_HALL to {_HALL_FOLDER}"
        )
    folder = Path(profile)
    if not folder.is_dir():
        raise UsageError(f"{given}={profile}: no such folder; point it at {_HALL_FOLDER}")
    missing = [name for name in _HALL_FILES if not (folder / name).is_file()]
    if missing:
        raise UsageError(
            f"{given}={profile} is not a hall folder (no {', '.join(missing)}); "
            f"point it at {_HALL_FOLDER}"
        )
    return HallClient.from_profile(folder)


def _existing_file(option: str, name: str) -> Path:
    """The path given with ``option``, refused unless it names a readable file."""
    path = Path(name)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise UsageError(
            f"{option} {name} {what} (looked in {Path.cwd()}); give the path of an existing file"
        )
    return path


def _form(name: str | None) -> dict[str, object]:
    if not name:
        return {}
    try:
        form = json.loads(_existing_file("--form", name).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--form {name} is not JSON ({exc}); give a JSON object") from None
    if not isinstance(form, dict):
        raise UsageError(f"--form {name} holds a JSON {type(form).__name__}; give a JSON object")
    return form


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_progress_console,
        transient=False,
    )


def _submit(args: argparse.Namespace) -> int:
    files = [_existing_file("--file", f) for f in args.file]
    total = sum(f.stat().st_size for f in files)
    form = _form(args.form)
    with _client(args) as client, _progress() as bar:
        task = bar.add_task("uploading", total=total)
        r = client.submit(
            matter=(args.matter, args.matter_name or ""),
            to=args.to,
            applicant=Applicant(args.applicant_name, args.id_type, args.id_number),
            form=form,
            files=files,
            mode=args.mode or "",
            departments=args.department or (),
            progress=lambda n: bar.advance(task, n),
        )
    print(f"packet {r.packet_id}")
    print(f"case   {r.case_id}")
    for node, state in r.deliveries.items():
        print(f"delivery to {node}: {state}")
    return 0


def _inbox(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.watch:
            for item in client.watch(args.direction or "", include_existing=True):
                print(json.dumps(item.__dict__, ensure_ascii=False), flush=True)
            return 0
        items = client.inbox(args.direction or "")
    # Plain lines, not a table a narrow terminal would cut: ids stay whole to be copied.
    rows = [("packet", "case", "kind", "dir", "from", "matter", "files", "deliveries")]
    rows += [
        (
            i.packet_id,
            i.case_id,
            i.kind,
            i.direction,
            f"{i.sender_node}/{i.sender_hall}",
            f"{i.matter_code} {i.matter_name}",
            str(i.file_count),
            ", ".join(f"{k}:{v}" for k, v in i.deliveries.items()),
        )
        for i in items
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    with _client(args) as client, _progress() as bar:
        task = bar.add_task("downloading", total=None)
        p = client.fetch(args.packet, Path(args.out), progress=lambda n: bar.advance(task, n))
    print(
        f"packet {p.item.packet_id} from {p.item.sender_node}/{p.item.sender_hall}: "
        f"signature {p.signature_status} (key {p.signed_by_key[:16]})"
    )
    if p.applicant:
        print(f"applicant {p.applicant.name} ({p.applicant.id_type} {p.applicant.id_number})")
    print("form " + json.dumps(p.form, ensure_ascii=False))
    for f in p.files:
        print(f"  {'ok' if f.verified else 'BAD'} {f.path} {f.size} bytes sha256 {f.sha256}")
    return 0


def _case_line(info: object) -> None:
    print(json.dumps(info, default=lambda o: o.__dict__, ensure_ascii=False, indent=1))


def _act(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.cmd == "accept":
            info = c.accept(
                args.case,
                leg=args.leg or "",
                accepted_with_missing=args.deferred or (),
                deferred_due=args.deferred_due or "",
                commitment=args.commitment or "",
            )
        elif args.cmd == "suspend":
            info = c.suspend(args.case, args.reason, leg=args.leg or "")
        elif args.cmd == "resume":
            info = c.resume(args.case, note=args.note or "", leg=args.leg or "")
        elif args.cmd == "refuse":
            info = c.refuse(args.case, args.reason, leg=args.leg or "")
        elif args.cmd == "request-supplement":
            info = c.request_supplement(args.case, args.missing, leg=args.leg or "")
        elif args.cmd == "decide":
            info = c.decide(
                args.case,
                approved=args.decision == "approved",
                note=args.note or "",
                leg=args.leg or "",
            )
        elif args.cmd == "issue":
            info = c.issue(args.case, leg=args.leg or "")
        elif args.cmd == "deliver":
            info = c.deliver(args.case, leg=args.leg or "")
        else:
            info = c.case(args.case)
    _case_line(info)
    return 0


def _packet_with_files(args: argparse.Namespace) -> int:
    files = [_existing_file("--file", f) for f in args.file]
    with _client(args) as c:
        case_id = c.case(args.case).case_id  # the node completes an id prefix
        if args.cmd == "supplement":
            r = c.supplement(case_id, args.leg, files)
        else:
            r = c.return_result(case_id, files)
    print(f"packet {r.packet_id}\ncase   {r.case_id}")
    return 0


def _history(args: argparse.Namespace) -> int:
    with _client(args) as c:
        items, intact = c.history(args.case)
    table = Table("time", "leg", "#", "event", "by", "signature", "detail")
    for e in items:
        table.add_row(
            e.at,
            e.leg,
            str(e.seq),
            e.type,
            f"{e.actor_node}/{e.actor_hall}",
            e.signature_status,
            json.dumps(e.detail, ensure_ascii=False)[:60],
        )
    _console.print(table)
    print("chain intact" if intact else "CHAIN BROKEN")
    return 0 if intact else 1


Handler = Callable[[argparse.Namespace], int]
_CASE_HELP = "case id, or enough of its start to be unambiguous"


def _run(handler: Handler) -> Handler:
    """Report the node's refusals and bad input as a message and exit code 2, not a traceback."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except UsageError as exc:
            print(f"tongban hall {args.cmd}: {exc}")
            return 2
        except HallClientError as exc:
            print(f"tongban hall: {exc}")
            return 2
        except KeysError as exc:
            print(f"tongban hall: {exc.message}")
            return 2
        except ValueError as exc:
            print(f"tongban hall: {exc}")
            return 2

    return wrapped


def add_hall_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hall = sub.add_parser("hall", help="act as a service hall against its own node")
    hall.add_argument(
        "--profile",
        help="hall folder (hall.toml, cert.pem, key.pem, root.pem); default $TONGBAN_HALL",
    )
    cmds = hall.add_subparsers(dest="cmd", required=True)

    p = cmds.add_parser("submit", help="submit an application")
    p.add_argument("--matter", required=True, help="matter code, e.g. HB-2020-09")
    p.add_argument("--matter-name", help="matter name, checked against the catalogue")
    p.add_argument(
        "--to",
        action="append",
        required=True,
        help="handling node id (repeat for 联办), optionally NODE/HALL",
    )
    p.add_argument("--department", action="append", help="department of each --to, in order")
    p.add_argument("--mode", choices=["on_behalf", "joint"])
    p.add_argument("--applicant-name", required=True)
    p.add_argument("--id-type", choices=["citizen", "company"], default="citizen")
    p.add_argument("--id-number", required=True)
    p.add_argument("--form", help="JSON file with the form")
    p.add_argument("--file", action="append", default=[], help="material file (repeat)")
    p.set_defaults(handler=_run(_submit))

    p = cmds.add_parser("inbox", help="list (or --watch) packets")
    p.add_argument("--direction", choices=["in", "out"])
    p.add_argument("--watch", action="store_true")
    p.set_defaults(handler=_run(_inbox))

    p = cmds.add_parser("fetch", help="fetch, verify and decrypt a packet")
    p.add_argument("packet", help="packet id, or enough of its start to be unambiguous")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=_run(_fetch))

    for name, helptext in (
        ("accept", "受理"),
        ("refuse", "不予受理"),
        ("request-supplement", "一次性告知补正"),
        ("decide", "办结"),
        ("suspend", "挂起 (the clock stops)"),
        ("resume", "恢复"),
        ("issue", "出件"),
        ("deliver", "送达"),
        ("case", "show a case"),
    ):
        p = cmds.add_parser(name, help=helptext)
        p.add_argument("case", help=_CASE_HELP)
        p.add_argument("--leg", help="handling node of the leg (for 联办 cases)")
        if name in ("refuse", "suspend"):
            p.add_argument("--reason", required=True)
        if name == "resume":
            p.add_argument("--note")
        if name == "accept":
            p.add_argument("--deferred", action="append", help="容缺: a deferred material")
            p.add_argument("--deferred-due", help="YYYY-MM-DD the deferred materials are due")
            p.add_argument("--commitment", help="the applicant's signed commitment")
        if name == "request-supplement":
            p.add_argument("--missing", action="append", required=True)
        if name == "decide":
            p.add_argument("--decision", choices=["approved", "denied"], required=True)
            p.add_argument("--note")
        p.set_defaults(handler=_run(_act))

    p = cmds.add_parser("supplement", help="send the materials a supplement request asked for")
    p.add_argument("case", help=_CASE_HELP)
    p.add_argument("--leg", required=True)
    p.add_argument("--file", action="append", required=True)
    p.set_defaults(handler=_run(_packet_with_files))

    p = cmds.add_parser("result", help="return result documents of a decided case")
    p.add_argument("case", help=_CASE_HELP)
    p.add_argument("--file", action="append", required=True)
    p.set_defaults(handler=_run(_packet_with_files))

    p = cmds.add_parser("history", help="the signed event history of a case")
    p.add_argument("case", help=_CASE_HELP)
    p.set_defaults(handler=_run(_history))
