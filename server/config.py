"""Typed node configuration, read once at start-up from a TOML file and the environment.

Every key lives in a section; ``TONGBAN_<SECTION>_<KEY>`` overrides it (e.g.
``TONGBAN_STORAGE_DATABASE=postgresql://…``). Unknown sections and keys are refused, so
a typo never silently falls back to a default. Relative paths are relative to the file.

Limits (all in ``[limits]``):
    max_message_bytes   largest single gRPC message accepted (default 8 MiB)
    max_form_bytes      largest form JSON (default 1 MiB)
    max_file_bytes      largest material file (default 64 GiB)
    max_files           most files in one packet (default 1000)
    segment_size        plaintext bytes per encrypted segment (default 1 MiB)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_DELIVERY_BATCH",
    "MAX_INLINE_FILE_BYTES",
    "ConfigError",
    "DeliveryPolicy",
    "Limits",
    "NodeConfig",
    "load_config",
]

# Most packets one DeliverBatch call may carry (the receiver refuses more).
MAX_DELIVERY_BATCH = 256
# A packet whose files hold at most this many bytes in all (and a quarter of the message
# limit) travels in a DeliverBatch call, its segments inline, rather than in a stream of its
# own.
MAX_INLINE_FILE_BYTES = 2 << 20


class ConfigError(Exception):
    code = "bad-config"


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 8 << 20
    max_form_bytes: int = 1 << 20
    max_file_bytes: int = 64 << 30
    max_files: int = 1000
    segment_size: int = 1 << 20

    def travels_inline(self, file_bytes: int) -> bool:
        """Whether a packet whose files hold ``file_bytes`` in all goes to a peer in a
        batch, its segments inline, rather than in a stream of its own."""
        return file_bytes <= min(MAX_INLINE_FILE_BYTES, self.max_message_bytes // 4)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry policy for deliveries to other nodes, as a value."""

    initial_backoff: float = 0.5
    multiplier: float = 2.0
    max_backoff: float = 60.0
    workers: int = 8
    rpc_timeout: float = 600.0
    poll_interval: float = 1.0
    # Small packets to one peer travel together, up to this many per call (1: never).
    batch_size: int = 64

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts."""
        return float(
            min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, attempts - 1))
        )


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    tls_cert: Path
    tls_key: Path
    root_cert: Path
    directory: Path
    keys_dir: Path
    database: str
    objects: str
    listen: str = "127.0.0.1:50051"
    public_listen: str = ""
    matters: Path | None = None
    s3_access_key: str = ""
    s3_secret_key: str = ""
    directory_refresh_seconds: float = 300.0
    shutdown_grace_seconds: float = 30.0
    verification_url: str = ""
    seals_dir: Path | None = None
    result_seal: str = ""
    status_list_hours: float = 24.0
    orphan_sweep_seconds: float = 3600.0
    limits: Limits = field(default_factory=Limits)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)


_SCHEMA: dict[str, dict[str, type]] = {
    "node": {
        "id": str,
        "listen": str,
        "public_listen": str,
        "shutdown_grace_seconds": float,
    },
    "tls": {"cert": Path, "key": Path, "root": Path},
    "federation": {"directory": Path, "refresh_seconds": float},
    "keys": {"dir": Path},
    "storage": {
        "database": str,
        "objects": str,
        "s3_access_key": str,
        "s3_secret_key": str,
        "orphan_sweep_seconds": float,
    },
    "matters": {"catalog": Path},
    "seals": {"dir": Path, "result_seal": str, "verification_url": str, "status_list_hours": float},
    "limits": {f.name: int for f in fields(Limits)},
    "delivery": {
        f.name: (int if f.name in ("workers", "batch_size") else float)
        for f in fields(DeliveryPolicy)
    },
}


# The TOML (or override) types each kind accepts; environment values are always strings.
_ACCEPTED: dict[type, tuple[type, ...]] = {
    Path: (str, Path),
    int: (int, str),
    float: (int, float, str),
    str: (str,),
}


def _of_accepted_type(kind: type, value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, _ACCEPTED[kind])


def _coerce(section: str, key: str, value: Any, base: Path) -> Any:
    kind = _SCHEMA[section][key]
    try:
        # A value of another type is a mistake, not something to convert: int(1.5) would
        # silently give 1 and str(7) make a listen address of "7".
        if not _of_accepted_type(kind, value):
            raise TypeError(type(value).__name__)
        if kind is Path:
            p = Path(value).expanduser()
            return p if p.is_absolute() else (base / p).resolve()
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}] {key}: {value!r} is not a valid {kind.__name__}") from exc


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> NodeConfig:
    """Build the node configuration from a TOML file, then the environment, then overrides.

    Raises:
        ConfigError: unreadable file, unknown section or key, bad value, missing key.
    """
    environ = os.environ if environ is None else environ
    base = path.parent.resolve() if path else Path.cwd()
    raw: dict[str, dict[str, Any]] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    values: dict[str, dict[str, Any]] = {}
    for section, items in raw.items():
        if section not in _SCHEMA or not isinstance(items, dict):
            raise ConfigError(f"unknown config section [{section}]")
        for key, value in items.items():
            if key not in _SCHEMA[section]:
                raise ConfigError(f"unknown config key [{section}] {key}")
            values.setdefault(section, {})[key] = _coerce(section, key, value, base)
    for name, value in environ.items():
        if not name.startswith("TONGBAN_"):
            continue
        for section, keys in _SCHEMA.items():
            prefix = f"TONGBAN_{section.upper()}_"
            if name.startswith(prefix):
                key = name[len(prefix) :].lower()
                if key not in keys:
                    raise ConfigError(f"unknown config key in environment: {name}")
                values.setdefault(section, {})[key] = _coerce(section, key, value, Path.cwd())
    for section, given in (overrides or {}).items():
        for key, value in given.items():
            if section not in _SCHEMA or key not in _SCHEMA[section]:
                raise ConfigError(f"unknown config key [{section}] {key}")
            values.setdefault(section, {})[key] = _coerce(section, key, value, base)

    def need(section: str, key: str) -> Any:
        try:
            return values[section][key]
        except KeyError:
            raise ConfigError(f"missing config key [{section}] {key}") from None

    def get(section: str, key: str, default: Any) -> Any:
        return values.get(section, {}).get(key, default)

    storage = values.setdefault("storage", {})
    database = str(storage.get("database", f"sqlite:///{base / 'var' / 'metadata.db'}"))
    if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
        # A relative SQLite path is relative to the config file, like every other path.
        database = f"sqlite:///{(base / database.removeprefix('sqlite:///')).resolve()}"
    storage["database"] = database
    objects = str(storage.get("objects", base / "var" / "blobs"))
    if "://" not in objects and not Path(objects).is_absolute():
        objects = str((base / objects).resolve())
    storage["objects"] = objects
    limits = Limits(**values.get("limits", {}))
    if not 0 < limits.segment_size <= 4 << 20:
        raise ConfigError("[limits] segment_size must be between 1 byte and 4 MiB")
    if limits.max_message_bytes < limits.segment_size + (64 << 10):
        raise ConfigError("[limits] max_message_bytes must exceed segment_size by 64 KiB")
    delivery = DeliveryPolicy(**values.get("delivery", {}))
    if not 1 <= delivery.batch_size <= MAX_DELIVERY_BATCH:
        raise ConfigError(f"[delivery] batch_size must be between 1 and {MAX_DELIVERY_BATCH}")
    if delivery.workers < 1:
        raise ConfigError("[delivery] workers must be at least 1")
    return NodeConfig(
        node_id=need("node", "id"),
        listen=get("node", "listen", "127.0.0.1:50051"),
        public_listen=get("node", "public_listen", ""),
        verification_url=get("seals", "verification_url", ""),
        seals_dir=get("seals", "dir", None),
        result_seal=get("seals", "result_seal", ""),
        status_list_hours=get("seals", "status_list_hours", 24.0),
        orphan_sweep_seconds=get("storage", "orphan_sweep_seconds", 3600.0),
        shutdown_grace_seconds=get("node", "shutdown_grace_seconds", 30.0),
        tls_cert=need("tls", "cert"),
        tls_key=need("tls", "key"),
        root_cert=need("tls", "root"),
        directory=need("federation", "directory"),
        directory_refresh_seconds=get("federation", "refresh_seconds", 300.0),
        keys_dir=need("keys", "dir"),
        database=database,
        objects=objects,
        s3_access_key=get("storage", "s3_access_key", ""),
        s3_secret_key=get("storage", "s3_secret_key", ""),
        matters=get("matters", "catalog", None),
        limits=limits,
        delivery=delivery,
    )
