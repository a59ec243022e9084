"""Mutation testing of the trust code with cosmic-ray, and the report in docs/mutation.md.

cosmic-ray mutates a module's file in place and runs a test command against it, so the
mutant is what ``tongban.*`` imports whatever the package layout (the editable install maps
``tongban.keys`` onto ``keys/``). Each module runs with the focused tests listed for it in
``targets.toml``; ``functions`` there limits a large module to its trust decisions.

A surviving mutant is either killed by a new test or listed in ``equivalent.toml`` with the
reason it cannot change behaviour. Timeouts count as killed (the mutant hangs the tests).

Usage: scripts/mutation.sh [--fast] [MODULE_PATH ...]
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "scripts" / "mutation"
SESSIONS = ROOT / ".mutation"
RESULTS = HERE / "results.json"
REPORT = ROOT / "docs" / "mutation.md"
PYTHON = Path(sys.executable)
_ANNOTATION = "in a type annotation"


@dataclass(frozen=True)
class Target:
    """One module to mutate and the tests that exercise it."""

    module: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()
    fast: bool = False
    timeout: float = 0.0
    note: str = ""

    @property
    def slug(self) -> str:
        return self.module.replace("/", "_").removesuffix(".py")

    def test_command(self) -> str:
        # -x: the first failure kills the mutant; no cache: nothing written between runs.
        return " ".join(
            [str(PYTHON), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *self.tests]
        )


@dataclass(frozen=True)
class Equivalent:
    module: str
    scope: str
    operator: str
    original: str
    mutated: str
    reason: str


@dataclass
class Mutant:
    scope: str
    operator: str
    line: int
    original: str
    mutated: str
    outcome: str  # killed | timeout | survived | equivalent | incompetent | error
    reason: str = ""


@dataclass
class ModuleRun:
    module: str
    tests: list[str]
    functions: list[str]
    started: str
    commit: str
    seconds: float
    mutants: list[Mutant] = field(default_factory=list)
    in_annotations: int = 0

    def count(self, *outcomes: str) -> int:
        return sum(m.outcome in outcomes for m in self.mutants)

    def summary(self) -> dict[str, Any]:
        total = len(self.mutants) - self.count("not made")
        equivalent = self.count("equivalent")
        killed = self.count("killed", "timeout")
        scored = total - equivalent
        return {
            "started": self.started,
            "commit": self.commit,
            "seconds": round(self.seconds),
            "mutants": total,
            "killed": killed,
            "timeouts": self.count("timeout"),
            "survived": self.count("survived"),
            "equivalent": equivalent,
            "errors": self.count("incompetent", "error"),
            "not_made": self.count("not made"),
            "in_annotations": self.in_annotations,
            "score": round(100 * killed / scored, 1) if scored else 100.0,
        }


def load_targets() -> list[Target]:
    data = tomllib.loads((HERE / "targets.toml").read_text(encoding="utf-8"))
    return [
        Target(
            module=t["module"],
            tests=tuple(t.get("tests", ())),
            functions=tuple(t.get("functions", ())),
            fast=bool(t.get("fast", False)),
            timeout=float(t.get("timeout", 0.0)),
            note=str(t.get("note", "")),
        )
        for t in data["target"]
    ]


def load_equivalents() -> list[Equivalent]:
    data = tomllib.loads((HERE / "equivalent.toml").read_text(encoding="utf-8"))
    return [Equivalent(**e) for e in data.get("equivalent", [])]


def _scopes(source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every def and class, decorators included;
    innermost last."""
    found: list[tuple[int, int, str]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                name = f"{prefix}{child.name}"
                found.append((start, child.end_lineno or child.lineno, name))
                walk(child, f"{name}.")

    walk(ast.parse(source), "")
    return found


def _scope_of(scopes: list[tuple[int, int, str]], line: int) -> str:
    inner = [(b - a, name) for a, b, name in scopes if a <= line <= b]
    return min(inner)[1] if inner else "<module>"


def _function_ranges(source: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """Line ranges of the named functions (``name`` or ``Class.name``), nested ones included."""
    ranges: list[tuple[int, int]] = []
    found: set[str] = set()

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                qualified = f"{prefix}{child.name}"
                if qualified in names or child.name in names:
                    found.add(qualified if qualified in names else child.name)
                    start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    ranges.append((start, child.end_lineno or child.lineno))
                walk(child, f"{qualified}.")

    walk(ast.parse(source), "")
    missing = set(names) - found
    if missing:
        raise SystemExit(f"targets.toml names functions that do not exist: {sorted(missing)}")
    return ranges


def _annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the type annotations are, as (line, column) spans in characters; empty unless the
    module defers annotations (then they are never evaluated, and no mutant there can change
    what the code does)."""
    tree = ast.parse(source)
    deferred = any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    if not deferred:
        return []
    lines = source.splitlines()

    def char_col(line: int, byte_col: int) -> int:
        return len(lines[line - 1].encode()[:byte_col].decode(errors="ignore"))

    spans = []
    for node in ast.walk(tree):
        notes: list[ast.expr | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            notes.append(node.returns)
        elif isinstance(node, ast.arg | ast.AnnAssign):
            notes.append(node.annotation)
        for n in notes:
            if n is not None and n.end_lineno is not None and n.end_col_offset is not None:
                spans.append(
                    (
                        (n.lineno, char_col(n.lineno, n.col_offset)),
                        (n.end_lineno, char_col(n.end_lineno, n.end_col_offset)),
                    )
                )
    return spans


def _diff_lines(diff: str | None) -> tuple[str, str]:
    """The first removed and added line of a mutant's diff, stripped."""
    removed = added = ""
    for line in (diff or "").splitlines():
        if line.startswith("-") and not line.startswith("---") and not removed:
            removed = line[1:].strip()
        elif line.startswith("+") and not line.startswith("+++") and not added:
            added = line[1:].strip()
    return removed, added


def _outcome(result: WorkResult) -> str:
    if result.worker_outcome is WorkerOutcome.EXCEPTION:
        # No diff: cosmic-ray failed to write this mutant, so no test ever saw it.
        return "error" if result.diff else "not made"
    if result.test_outcome is TestOutcome.INCOMPETENT:
        return "incompetent"
    if result.test_outcome is TestOutcome.SURVIVED:
        return "survived"
    return "timeout" if result.output == "timeout" else "killed"


def _git_commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip()


class _SourceGuard:
    """Puts the module's original text back however the run ends (cosmic-ray restores each
    mutant itself; this covers an interrupted run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.original = path.read_bytes()
        self._previous: dict[int, Any] = {}

    def restore(self) -> None:
        if self.path.read_bytes() != self.original:
            self.path.write_bytes(self.original)
            print(f"restored {self.path.relative_to(ROOT)}", file=sys.stderr)

    def __enter__(self) -> _SourceGuard:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.restore()
        raise SystemExit(128 + signum)

    def __exit__(self, *_: object) -> None:
        self.restore()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _progress(db_path: Path, total: int, stop: threading.Event, module: str) -> None:
    while not stop.wait(30):
        with use_db(str(db_path), WorkDB.Mode.open) as db:
            left = len(db.pending_work_items)
        print(f"  {module}: {total - left}/{total}", flush=True)


def _pending_ids(db: WorkDB) -> Iterator[str]:
    for item in db.pending_work_items:
        yield item.job_id


def run_target(target: Target, equivalents: list[Equivalent]) -> ModuleRun:
    """Mutate one module under its focused tests; the classified mutants."""
    path = ROOT / target.module
    SESSIONS.mkdir(exist_ok=True)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    clock = time.monotonic()
    with _SourceGuard(path) as guard:
        baseline = time.monotonic()
        check = subprocess.run(
            target.test_command().split(), cwd=ROOT, capture_output=True, check=False
        )
        if check.returncode != 0:
            sys.stdout.write(check.stdout.decode(errors="replace")[-3000:])
            raise SystemExit(f"{target.module}: its tests fail before any mutation")
        timeout = target.timeout or max(30.0, 5 * (time.monotonic() - baseline))
        config = SESSIONS / f"{target.slug}.toml"
        db_path = SESSIONS / f"{target.slug}.sqlite"
        config.write_text(
            "[cosmic-ray]\n"
            f"module-path = {json.dumps(target.module)}\n"
            f"timeout = {timeout:.1f}\n"
            "excluded-modules = []\n"
            f"test-command = {json.dumps(target.test_command())}\n"
            "[cosmic-ray.distributor]\n"
            'name = "local"\n',
            encoding="utf-8",
        )
        db_path.unlink(missing_ok=True)
        cosmic = str(PYTHON.parent / "cosmic-ray")
        subprocess.run([cosmic, "init", str(config), str(db_path)], cwd=ROOT, check=True)
        with use_db(str(db_path), WorkDB.Mode.open) as db:
            source = guard.original.decode()
            ranges = _function_ranges(source, target.functions) if target.functions else []
            annotations = _annotation_spans(source)
            outside, annotated = [], []
            for item in db.work_items:
                start = tuple(item.mutations[0].start_pos)
                if ranges and not any(a <= start[0] <= b for a, b in ranges):
                    outside.append(item.job_id)
                elif any(a <= start < b for a, b in annotations):
                    annotated.append(item.job_id)
            db.set_multiple_results(outside, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
            db.set_multiple_results(
                annotated,
                WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=_ANNOTATION),
            )
            total = sum(1 for _ in _pending_ids(db))
        print(f"{target.module}: {total} mutants, timeout {timeout:.0f}s each", flush=True)
        stop = threading.Event()
        ticker = threading.Thread(
            target=_progress, args=(db_path, total, stop, target.module), daemon=True
        )
        ticker.start()
        try:
            subprocess.run([cosmic, "exec", str(config), str(db_path)], cwd=ROOT, check=True)
        finally:
            stop.set()
    run = ModuleRun(
        target.module,
        list(target.tests),
        list(target.functions),
        started,
        _git_commit(),
        time.monotonic() - clock,
    )
    lines = guard.original.decode().splitlines()
    scopes = _scopes(guard.original.decode())
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome is WorkerOutcome.SKIPPED:
                run.in_annotations += result.output == _ANNOTATION
                continue
            spec = item.mutations[0]
            line = spec.start_pos[0]
            original, mutated = _diff_lines(result.diff)
            original = original or lines[line - 1].strip()
            scope = _scope_of(scopes, line)
            mutant = Mutant(scope, spec.operator_name, line, original, mutated, _outcome(result))
            if mutant.outcome == "survived":
                match = next(
                    (
                        e
                        for e in equivalents
                        if (e.module, e.scope, e.operator, e.original, e.mutated)
                        == (target.module, scope, mutant.operator, original, mutated)
                    ),
                    None,
                )
                if match is not None:
                    mutant.outcome, mutant.reason = "equivalent", match.reason
            run.mutants.append(mutant)
    run.mutants.sort(key=lambda m: (m.line, m.operator, m.mutated))
    return run


# ---- the report ---------------------------------------------------------------------------


def _code(text: str) -> str:
    return f"`{text}`" if text else "(removed)"


def _row(label: str, s: dict[str, Any]) -> str:
    return (
        f"| {label} | {s['mutants']} | {s['killed']} ({s['timeouts']}) | {s['survived']} "
        f"| {s['equivalent']} | {s['score']} % | {s.get('in_annotations', 0)} | {s['seconds']} s "
        f"| {s['started']}, {s['commit']} |"
    )


def write_report(results: dict[str, Any], targets: list[Target]) -> None:
    out = [
        "# Mutation testing of the trust code",
        "",
        "Generated by `scripts/mutation.sh` (cosmic-ray; see "
        "[contributing](contributing.md#trust-checks)). Do not edit by hand.",
        "",
        "Each module is mutated in place and judged by its focused tests only (listed under "
        "each table, from `scripts/mutation/targets.toml`). **Killed** counts the mutants a "
        "test failed on, timeouts included (a mutant that hangs the tests is caught; the "
        "number in brackets is how many timed out). **Survived** are mutants no test "
        "noticed that are not judged equivalent; **equivalent** are survivors listed in "
        "`scripts/mutation/equivalent.toml` with the reason they cannot change behaviour. "
        "Score = killed / (mutants − equivalent). *Before* is the first recorded run, "
        "*after* the latest. Mutants inside type annotations are counted apart and not run: "
        "every module defers annotations (`from __future__ import annotations`), so they are "
        "never evaluated and such a mutant cannot change behaviour.",
        "",
    ]
    order = [t.module for t in targets] + sorted(set(results) - {t.module for t in targets})
    notes = {t.module: t.note for t in targets}
    for module in order:
        if module not in results:
            continue
        entry = results[module]
        out += [f"## `{module}`", ""]
        if notes.get(module):
            out += [notes[module], ""]
        out += [
            "| run | mutants | killed (timeouts) | survived | equivalent | score "
            "| in annotations, not run | time | when, commit |",
            "|---|---|---|---|---|---|---|---|---|",
            _row("before", entry["before"]),
            _row("after", entry["after"])
            if entry.get("after")
            else "| after | not run yet since the new tests were added |",
            "",
            "Tests: " + ", ".join(f"`{t}`" for t in entry["tests"] if not t.startswith("-")) + ".",
        ]
        if entry["functions"]:
            out.append("Mutated functions: " + ", ".join(f"`{f}`" for f in entry["functions"]))
        out.append("")
        not_made = [m for m in entry["mutants"] if m["outcome"] == "not made"]
        if not_made:
            out += ["cosmic-ray could not write these mutants (no test ran on them):", ""]
            out += [f"- line {m['line']}, {m['operator']}: `{m['original']}`" for m in not_made]
            out.append("")
        errors = [m for m in entry["mutants"] if m["outcome"] in ("error", "incompetent")]
        if errors:
            out += ["Mutants whose test run broke down (counted in neither column):", ""]
            out += [f"- line {m['line']}, {m['operator']}: `{m['original']}`" for m in errors]
            out.append("")
        survivors = [m for m in entry["mutants"] if m["outcome"] == "survived"]
        if survivors:
            out += [
                "Surviving mutants of the latest run (neither killed nor judged equivalent):",
                "",
            ]
            out += [
                f"- `{m.get('scope', '')}` line {m['line']}, {m['operator']}: `{m['original']}` → "
                f"{_code(m['mutated'])}"
                for m in survivors
            ]
            out.append("")
    out += ["## Surviving mutants judged equivalent", ""]
    any_equivalent = False
    for module in order:
        for m in (results.get(module) or {}).get("mutants", []):
            if m["outcome"] == "equivalent":
                any_equivalent = True
                out.append(
                    f"- `{module}` `{m.get('scope', '')}` line {m['line']}, {m['operator']}: "
                    f"`{m['original']}` → {_code(m['mutated'])} — {m['reason']}"
                )
    if not any_equivalent:
        out.append("None.")
    REPORT.write_text("\n".join(out) + "\n", encoding="utf-8")


def record(run: ModuleRun) -> None:
    results: dict[str, Any] = (
        json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    )
    summary = run.summary()
    previous = results.get(run.module, {})
    results[run.module] = {
        "tests": run.tests,
        "functions": run.functions,
        "before": previous.get("before", summary),
        "after": summary if "before" in previous else None,
        "mutants": [m.__dict__ for m in run.mutants if m.outcome != "killed"],
    }
    RESULTS.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module paths, e.g. keys/content.py")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="only the small modules marked fast; fail if a non-equivalent mutant survives",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="do not update results.json and the report"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite the report from results.json"
    )
    args = parser.parse_args()
    if args.report_only:
        write_report(json.loads(RESULTS.read_text(encoding="utf-8")), load_targets())
        return 0
    if shutil.which("git") is None:
        raise SystemExit("git is needed")
    targets = load_targets()
    known = {t.module: t for t in targets}
    if args.modules:
        unknown = [m for m in args.modules if m not in known]
        if unknown:
            raise SystemExit(f"no target in scripts/mutation/targets.toml for {unknown}")
        chosen = [known[m] for m in args.modules]
    elif args.fast:
        chosen = [t for t in targets if t.fast]
    else:
        chosen = targets
    equivalents = load_equivalents()
    failed = False
    for target in chosen:
        run = run_target(target, equivalents)
        s = run.summary()
        print(
            f"{target.module}: {s['mutants']} mutants, {s['killed']} killed "
            f"({s['timeouts']} timeouts), {s['survived']} survived, "
            f"{s['equivalent']} equivalent, {s['errors']} errors, {s['seconds']} s"
            + (f" ({s['not_made']} mutants cosmic-ray could not write)" if s["not_made"] else "")
        )
        for m in run.mutants:
            if m.outcome in ("survived", "incompetent", "error"):
                failed = True
                print(
                    f"  {m.outcome}: {m.scope} line {m.line} {m.operator}: "
                    f"{m.original} -> {m.mutated}"
                )
        if not (args.fast or args.no_report):
            record(run)
    if not (args.fast or args.no_report):
        write_report(json.loads(RESULTS.read_text(encoding="utf-8")), targets)
        print(f"wrote {REPORT.relative_to(ROOT)}")
    return 1 if failed and args.fast else 0


if __name__ == "__main__":
    sys.exit(main())
