"""What a test needs from the machine, and what happens when it is missing.

Outside CI a test whose service or program is missing is skipped with the reason. When
``CI=true`` it fails instead, so a CI image cannot silently lose tests.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["IN_CI", "require_programs", "unavailable"]

IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip the running test (fail it when ``CI=true``) because ``reason``."""
    if IN_CI:
        pytest.fail(
            f"{reason} (CI=true: a missing service or program fails the run)", pytrace=False
        )
    pytest.skip(reason)


def require_programs(*names: str, install: str) -> None:
    """Skip (or fail in CI) unless every program in ``names`` is on PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        unavailable(f"needs programs that are not installed: {', '.join(missing)}; {install}")
