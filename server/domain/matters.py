"""The catalogue of matters (事项) a node accepts, with their time limits.

The default catalogue ships with the package (``matters.json``); a node may load its own
file instead. Every application names a matter by its stable code, and optionally by
name so that a hall using an outdated list is told rather than misrouted.

Example::

    >>> catalog = MatterCatalog.load_default()
    >>> matter = catalog.check("HB-2020-09", "我要开饭店")
    >>> matter.lead, matter.promised_days <= matter.legal_days, matter.joint
    ('省市场监管局', True, True)
    >>> catalog.get("HB-9999-99")
    Traceback (most recent call last):
        ...
    tongban.server.domain.matters.UnknownMatter: unknown matter code 'HB-9999-99'
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from tongban.keys.errors import echo

__all__ = [
    "DEFAULT_NOTICE_TEMPLATE",
    "NOTICE_FIELDS",
    "Matter",
    "MatterCatalog",
    "MatterCatalogInvalid",
    "MatterError",
    "MatterNameMismatch",
    "UnknownMatter",
    "check_notice_template",
]


class MatterError(Exception):
    """Base of the matter catalogue's errors."""

    code = "matter-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownMatter(MatterError):
    """No matter has the given code."""

    code = "unknown-matter"

    def __init__(self, matter_code: str) -> None:
        super().__init__(f"unknown matter code {echo(matter_code)}")
        self.matter_code = matter_code


class MatterNameMismatch(MatterError):
    """The code is known but the name given with it belongs to no such matter."""

    code = "matter-name-mismatch"

    def __init__(self, matter: Matter, given_name: str) -> None:
        super().__init__(f"matter {matter.code} is named {matter.name!r}, not {echo(given_name)}")
        self.matter = matter
        self.given_name = given_name


class MatterCatalogInvalid(MatterError):
    """A catalogue file cannot be used."""

    code = "matter-catalog-invalid"


_CODE_PATTERN = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")
_MAX_CODE_LENGTH = 32


NOTICE_FIELDS = frozenset(
    {
        "case_id",
        "matter_code",
        "matter_name",
        "department",
        "handling_node",
        "accepting_node",
        "accepting_hall",
        "received_date",
        "accepted_date",
        "due_date",
        "decided_date",
        "promised_days",
        "legal_days",
    }
)
"""The fields a default-approval notice template may use, as ``${field}``."""

DEFAULT_NOTICE_TEMPLATE = (
    "默认许可决定书\n"
    "\n"
    "案件编号：${case_id}\n"
    "事项：${matter_name}（${matter_code}）\n"
    "办理部门：${department}\n"
    "受理日期：${accepted_date}\n"
    "承诺办结时限：${promised_days}个工作日，至${due_date}届满\n"
    "\n"
    "本申请自受理之日起已超过承诺办结时限，办理部门未作出决定。"
    "依照超时默认、自动用印的规定，视为准予许可，本决定自${decided_date}起生效。\n"
    "\n"
    "收件地：${accepting_node} ${accepting_hall}\n"
)
"""The notice used when a matter names no template of its own."""


def check_notice_template(code: str, template: str) -> None:
    """Refuse a template with a field outside :data:`NOTICE_FIELDS` or a bad placeholder.

    Raises:
        MatterCatalogInvalid: the message names the matter and the field.
    """
    t = string.Template(template)
    if not t.is_valid():
        raise MatterCatalogInvalid(
            f"matter {code}: the notice template has a malformed placeholder (use ${{field}}, "
            "and $$ for a dollar sign)"
        )
    unknown = sorted(set(t.get_identifiers()) - NOTICE_FIELDS)
    if unknown:
        raise MatterCatalogInvalid(
            f"matter {code}: the notice template uses unknown fields {unknown}; known are "
            f"{sorted(NOTICE_FIELDS)}"
        )


@dataclass(frozen=True)
class Matter:
    """One matter, with the departments that handle it and its limits in working days.

    ``illustrative`` marks a matter that is an example rather than taken from a published
    list; the time limits of the bundled catalogue are illustrative in every case.
    A promised limit of 0 is a same-day matter (即办). ``exempt`` matters are never
    approved by default on overdue (vertical national or provincial systems, security or
    secrecy); ``deferrable`` names the materials that may follow later under 容缺受理;
    ``notice_template`` is the default-approval notice (see :data:`NOTICE_FIELDS`), empty
    for :data:`DEFAULT_NOTICE_TEMPLATE`.
    """

    code: str
    name: str
    lead: str
    pilots: tuple[str, ...]
    cooperating: tuple[str, ...]
    promised_days: int
    legal_days: int
    illustrative: bool = False
    exempt: bool = False
    deferrable: tuple[str, ...] = ()
    notice_template: str = ""

    def __post_init__(self) -> None:
        if len(self.code) > _MAX_CODE_LENGTH or not _CODE_PATTERN.fullmatch(self.code):
            raise MatterCatalogInvalid(
                f"matter code {self.code!r} must be uppercase letters and digits joined by "
                f"'-', at most {_MAX_CODE_LENGTH} characters"
            )
        if not self.name.strip() or not self.lead.strip():
            raise MatterCatalogInvalid(f"matter {self.code} needs a name and a lead department")
        if not 0 <= self.promised_days <= self.legal_days or self.legal_days == 0:
            raise MatterCatalogInvalid(
                f"matter {self.code} must have 0 <= promised_days <= legal_days and "
                f"legal_days > 0, got {self.promised_days} and {self.legal_days}"
            )
        if any(not m.strip() for m in self.deferrable):
            raise MatterCatalogInvalid(f"matter {self.code}: a deferrable material is blank")
        check_notice_template(self.code, self.notice_template)

    @property
    def notice(self) -> str:
        """The default-approval notice template in force."""
        return self.notice_template or DEFAULT_NOTICE_TEMPLATE

    def to_json(self) -> dict[str, Any]:
        """The entry as it appears in a catalogue file."""
        entry: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "lead": self.lead,
            "pilots": list(self.pilots),
            "cooperating": list(self.cooperating),
            "promised_days": self.promised_days,
            "legal_days": self.legal_days,
            "illustrative": self.illustrative,
            "exempt": self.exempt,
            "deferrable": list(self.deferrable),
        }
        if self.notice_template:
            entry["notice_template"] = self.notice_template
        return entry

    @classmethod
    def from_json(cls, entry: Any, *, where: str = "matter") -> Matter:
        """An entry of a catalogue file.

        Raises:
            MatterCatalogInvalid: unknown or missing keys, wrong types, impossible limits,
                or a template with an unknown field.
        """
        return _matter_from_json(entry, where)

    @property
    def joint(self) -> bool:
        """Whether other departments take part (多地联办) besides the lead."""
        return bool(self.cooperating)


def _normalise_name(name: str) -> str:
    # Halls type names with full-width or ASCII brackets and stray blanks alike;
    # NFKC folds "（" to "(" so such differences are not reported as mismatches.
    return unicodedata.normalize("NFKC", name).strip()


_FIELDS: dict[str, type] = {
    "code": str,
    "name": str,
    "lead": str,
    "pilots": list,
    "cooperating": list,
    "promised_days": int,
    "legal_days": int,
    "illustrative": bool,
    "exempt": bool,
    "deferrable": list,
    "notice_template": str,
}
_REQUIRED = frozenset(_FIELDS) - {"illustrative", "exempt", "deferrable", "notice_template"}
_TOP_LEVEL = frozenset({"about", "source", "matters"})


def _strings(value: list[Any], where: str) -> tuple[str, ...]:
    if not all(isinstance(item, str) for item in value):
        raise MatterCatalogInvalid(f"{where} must be a list of strings")
    return tuple(value)


def _matter_from_json(entry: Any, where: str) -> Matter:
    if not isinstance(entry, dict):
        raise MatterCatalogInvalid(f"{where} must be an object")
    unknown = sorted(set(entry) - set(_FIELDS))
    if unknown:
        raise MatterCatalogInvalid(f"{where} has unknown keys {unknown}")
    missing = sorted(_REQUIRED - set(entry))
    if missing:
        raise MatterCatalogInvalid(f"{where} lacks keys {missing}")
    for key, kind in _FIELDS.items():
        # bool is an int in Python; a limit of ``true`` days is a mistake, not 1.
        value = entry.get(key)
        if key in entry and (
            not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        ):
            raise MatterCatalogInvalid(f"{where}.{key} must be of type {kind.__name__}")
    return Matter(
        code=entry["code"],
        name=entry["name"],
        lead=entry["lead"],
        pilots=_strings(entry["pilots"], f"{where}.pilots"),
        cooperating=_strings(entry["cooperating"], f"{where}.cooperating"),
        promised_days=entry["promised_days"],
        legal_days=entry["legal_days"],
        illustrative=entry.get("illustrative", False),
        exempt=entry.get("exempt", False),
        deferrable=_strings(entry.get("deferrable", []), f"{where}.deferrable"),
        notice_template=entry.get("notice_template", ""),
    )


class MatterCatalog:
    """The matters a node accepts, by code, in catalogue order."""

    def __init__(self, matters: Iterable[Matter]) -> None:
        """Index ``matters`` by code.

        Raises:
            MatterCatalogInvalid: two matters share a code.
        """
        self._by_code: dict[str, Matter] = {}
        for matter in matters:
            if matter.code in self._by_code:
                raise MatterCatalogInvalid(f"matter code {matter.code} appears twice")
            self._by_code[matter.code] = matter

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "catalogue") -> MatterCatalog:
        """Parse a catalogue document: ``{"matters": [...]}`` plus optional notes.

        Raises:
            MatterCatalogInvalid: not JSON, unknown or missing keys, wrong types, or
                impossible limits; the message names ``source`` and the entry.
        """
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise MatterCatalogInvalid(f"{source} is not JSON: {exc}") from None
        try:
            if not isinstance(document, dict) or not isinstance(document.get("matters"), list):
                raise MatterCatalogInvalid('the document must be an object with a "matters" list')
            unknown = sorted(set(document) - _TOP_LEVEL)
            if unknown:
                raise MatterCatalogInvalid(f"unknown top-level keys {unknown}")
            return cls(
                _matter_from_json(entry, f"matters[{index}]")
                for index, entry in enumerate(document["matters"])
            )
        except MatterCatalogInvalid as exc:
            raise MatterCatalogInvalid(f"{source}: {exc.message}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> MatterCatalog:
        """Load a catalogue file (UTF-8 JSON, same shape as the bundled one).

        Raises:
            OSError: the file cannot be read.
            MatterCatalogInvalid: see :meth:`from_json`.
        """
        path = Path(path)
        return cls.from_json(path.read_bytes(), source=str(path))

    @classmethod
    def load_default(cls) -> MatterCatalog:
        """The catalogue bundled with the package."""
        data = resources.files("tongban.server.domain").joinpath("matters.json").read_bytes()
        return cls.from_json(data, source="bundled matters.json")

    def get(self, code: str) -> Matter:
        """The matter with ``code``.

        Raises:
            UnknownMatter: no such code.
        """
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownMatter(code) from None

    def check(self, code: str, name: str | None = None) -> Matter:
        """The matter with ``code``, after checking that ``name`` (if given) is its name.

        Raises:
            UnknownMatter: no such code.
            MatterNameMismatch: ``name`` is given and differs from the matter's name.
        """
        matter = self.get(code)
        if name is not None and _normalise_name(name) != _normalise_name(matter.name):
            raise MatterNameMismatch(matter, name)
        return matter

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Matter]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)
