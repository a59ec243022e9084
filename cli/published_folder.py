"""A folder of published lists, as ``federation init`` and ``published fetch`` write it.

``root.pem`` (the federation root), ``directory.json`` (the signed directory), and for each
node ``<node>/seal-registry.json`` and ``<node>/status-list.json``: everything
``tongban verify --published DIR`` needs to reach a verdict offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PublishedFolder", "read_published_folder"]


@dataclass(frozen=True)
class PublishedFolder:
    """The files found in a published folder; ``status_lists`` by the node folder's name."""

    directory: Path | None
    seal_registries: tuple[Path, ...]
    status_lists: dict[str, Path]


def read_published_folder(folder: Path) -> PublishedFolder:
    """The published files in ``folder``.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    directory = folder / "directory.json"
    nodes = sorted(p for p in folder.iterdir() if p.is_dir())
    return PublishedFolder(
        directory if directory.is_file() else None,
        tuple(p / "seal-registry.json" for p in nodes if (p / "seal-registry.json").is_file()),
        {p.name: p / "status-list.json" for p in nodes if (p / "status-list.json").is_file()},
    )
