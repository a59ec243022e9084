"""Typed node configuration, read once at start-up from a TOML file and the environment.

Every key lives in a section; ``TONGBAN_<SECTION>_<KEY>`` overrides it (e.g.
``TONGBAN_STORAGE_DATABASE=postgresql://…``). Unknown sections and keys are refused, so
a typo never silently falls back to a default. Relative paths are relative to the file.

Limits (all in ``[limits]``):
    max_message_bytes   largest single gRPC message accepted (default 8 MiB)
    max_form_bytes      largest form JSON (default 1 MiB; at most 4 MiB - 16 KiB)
    max_file_bytes      largest material file (default 64 GiB), at submit and on receipt
    max_files           most files in one packet (default 1000), at submit and on receipt
    segment_size        plaintext bytes per encrypted segment (default 1 MiB)
    max_anonymous_verify_bytes
                        largest document the public VerifyService reads from an anonymous
                        caller (default 64 MiB)

Verification site (all in ``[web]``; see ``tongban.server.web``):
    listen              address of the HTTPS site (empty: no site), e.g. "0.0.0.0:8443"
    site_url            the site's public address; new seals' QR codes carry
                        ``{site_url}/v?ecert=<identifier>``
    tls_cert, tls_key   the site's certificate chain and key (default: the node's [tls] ones)
    max_upload_bytes    largest file (document and .p7s together) the site checks (20 MiB)
    requests_per_minute requests one address may make a minute before 429 (default 120)

Admission (all in ``[admission]``; see ``tongban.server.grpc.admission`` and ADR 0005):
    idle_timeout_seconds    a call that waits this long on its caller for the next message
                            (or for a sent one to be taken) is ended (default 60)
    <lane>_calls            calls a lane admits at once
    <lane>_calls_per_caller calls one caller may hold in a lane at once
    spare_threads           threads beyond every lane's calls, for refusals (default 8)

    lane     who enters it                                   calls  per caller
    hall     mTLS callers that are not nodes or admins       64     16
    peer     peer nodes (RelayService)                       48     16
    admin    this node's admins                              8      4
    health   grpc.health.v1 Check, either port               8      2
    ops      health Watch and reflection, either port        8      2
    verify   VerifyService on the public port, per address   16     4
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "FORM_HEADROOM",
    "MAX_DELIVERY_BATCH",
    "MAX_INLINE_FILE_BYTES",
    "AdmissionPolicy",
    "ConfigError",
    "DeliveryPolicy",
    "Limits",
    "NodeConfig",
    "WebSite",
    "check_environment",
    "known_environment_names",
    "load_config",
]

# Bytes the sealed form may take beyond max_form_bytes: the applicant, and what canonical
# JSON adds to the hall's form ("1e5" becomes 100000.0).
FORM_HEADROOM = 16 << 10
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
    max_anonymous_verify_bytes: int = 64 << 20

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
    # While a peer cannot be reached one item probes it, at most this many seconds apart;
    # once it answers, its whole backlog is due at once.
    max_peer_probe_interval: float = 5.0

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts."""
        return float(
            min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, attempts - 1))
        )


@dataclass(frozen=True)
class AdmissionPolicy:
    """How many calls each lane of a server admits, and how long a call may wait on its caller.

    A lane's ``calls`` bound what it may hold of the server's threads; ``calls_per_caller``
    bound one caller's share of it (a caller is the certificate's holder on the mutual-TLS
    port and the peer address on the public port).
    """

    idle_timeout_seconds: float = 60.0
    hall_calls: int = 64
    hall_calls_per_caller: int = 16
    peer_calls: int = 48
    peer_calls_per_caller: int = 16
    admin_calls: int = 8
    admin_calls_per_caller: int = 4
    health_calls: int = 8
    health_calls_per_caller: int = 2
    ops_calls: int = 8
    ops_calls_per_caller: int = 2
    verify_calls: int = 16
    verify_calls_per_caller: int = 4
    spare_threads: int = 8

    def check(self) -> None:
        """Raises ConfigError for a limit that cannot work."""
        if not self.idle_timeout_seconds > 0:
            raise ConfigError("[admission] idle_timeout_seconds must be above 0")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "idle_timeout_seconds" and value < 1:
                raise ConfigError(f"[admission] {f.name} must be at least 1")
            if f.name.endswith("_per_caller"):
                lane_cap = f.name.removesuffix("_per_caller")
                if value > getattr(self, lane_cap):
                    raise ConfigError(f"[admission] {f.name} must not exceed {lane_cap}")


@dataclass(frozen=True)
class WebSite:
    """The verification web site's listener and limits (``[web]``)."""

    listen: str = ""
    site_url: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_upload_bytes: int = 20 << 20
    requests_per_minute: int = 120


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
    supervision_seconds: float = 300.0
    # A partial write (a .partial-* file not written to, an incomplete S3 multipart upload
    # started) longer ago than this is a crash's leftover, and the orphan sweep removes it.
    longest_transfer_seconds: float = 21600.0
    # A peer's clock further off than this (seconds) is logged and counted; further than
    # clock_skew_refuse_seconds from every peer's, this node refuses to seal.
    clock_skew_tolerance_seconds: float = 5.0
    clock_skew_refuse_seconds: float = 120.0
    # How often the health check asks the database and the object store whether they answer.
    health_probe_seconds: float = 5.0
    limits: Limits = field(default_factory=Limits)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    web: WebSite = field(default_factory=WebSite)


_SCHEMA: dict[str, dict[str, type]] = {
    "node": {
        "id": str,
        "listen": str,
        "public_listen": str,
        "shutdown_grace_seconds": float,
        "health_probe_seconds": float,
        "clock_skew_tolerance_seconds": float,
        "clock_skew_refuse_seconds": float,
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
        "longest_transfer_seconds": float,
    },
    "matters": {"catalog": Path, "supervision_seconds": float},
    "seals": {"dir": Path, "result_seal": str, "verification_url": str, "status_list_hours": float},
    "limits": {f.name: int for f in fields(Limits)},
    "delivery": {
        f.name: (int if f.name in ("workers", "batch_size") else float)
        for f in fields(DeliveryPolicy)
    },
    "admission": {
        f.name: (float if f.name == "idle_timeout_seconds" else int)
        for f in fields(AdmissionPolicy)
    },
    "web": {
        "listen": str,
        "site_url": str,
        "tls_cert": Path,
        "tls_key": Path,
        "max_upload_bytes": int,
        "requests_per_minute": int,
    },
}


# TONGBAN_* variables read outside the node's configuration: by the hall commands, the seal
# preview, the node's start-up, the demo, and the test suite (its PostgreSQL server, the
# browser and screenshots of the site tests, the disk-full hook of the fault runs).
OTHER_ENVIRONMENT = frozenset(
    {
        "TONGBAN_HALL",
        "TONGBAN_HALL_ENDPOINT",
        "TONGBAN_SEAL_FONT",
        "TONGBAN_SWITCH_INTERVAL",
        "TONGBAN_DEMO_KEEP",
        "TONGBAN_TEST_PG",
        "TONGBAN_TEST_DISK_ROOM_FILE",
        "TONGBAN_CHROMIUM",
        "TONGBAN_SCREENSHOTS",
    }
)


def known_environment_names() -> frozenset[str]:
    """Every TONGBAN_* variable tongban reads: a config key's override or one of the others."""
    config = {
        f"TONGBAN_{section.upper()}_{key.upper()}"
        for section in _SCHEMA
        for key in _SCHEMA[section]
    }
    return frozenset(config) | OTHER_ENVIRONMENT


def _unknown(
    what: str, name: str, known: Iterable[str], fix: str, *, common_prefix: str = ""
) -> ConfigError:
    """A refusal of an unknown name, with the closest known one when there is one (judged
    without the ``common_prefix`` every name shares)."""
    by_rest = {k.removeprefix(common_prefix): k for k in known}
    rest = name.removeprefix(common_prefix)
    close = difflib.get_close_matches(rest, sorted(by_rest), n=1, cutoff=0.6)
    hint = f"did you mean {by_rest[close[0]]}? " if close else ""
    return ConfigError(f"unknown {what} {name}: {hint}{fix}")


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse a TONGBAN_* variable that nothing reads: a misspelt override would otherwise
    leave the node running on the default it was meant to replace.

    Raises:
        ConfigError: names the variable and the closest known name.
    """
    known = known_environment_names()
    for name in sorted(environ):
        if name.startswith("TONGBAN_") and name not in known:
            raise _unknown(
                "environment variable", name, known, "correct or unset it", common_prefix="TONGBAN_"
            )


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


def _check_key(section: str, key: str) -> None:
    if key not in _SCHEMA[section]:
        raise _unknown(f"config key [{section}]", key, _SCHEMA[section], "correct or remove it")


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
            known = [f"[{s}]" for s in _SCHEMA]
            raise _unknown("config section", f"[{section}]", known, "correct or remove it")
        for key, value in items.items():
            _check_key(section, key)
            values.setdefault(section, {})[key] = _coerce(section, key, value, base)
    check_environment(environ)
    for name, value in environ.items():
        for section, keys in _SCHEMA.items():
            prefix = f"TONGBAN_{section.upper()}_"
            if name.startswith(prefix) and name[len(prefix) :].lower() in keys:
                key = name[len(prefix) :].lower()
                values.setdefault(section, {})[key] = _coerce(section, key, value, Path.cwd())
    for section, given in (overrides or {}).items():
        for key, value in given.items():
            if section not in _SCHEMA:
                raise ConfigError(f"unknown config key [{section}] {key}")
            _check_key(section, key)
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
    if not 0 < limits.max_form_bytes <= (4 << 20) - FORM_HEADROOM:
        # The sealed form is one segment of at most 4 MiB.
        raise ConfigError(
            f"[limits] max_form_bytes must be between 1 and {(4 << 20) - FORM_HEADROOM}"
        )
    if limits.max_files < 1 or limits.max_file_bytes < 0:
        raise ConfigError("[limits] max_files must be at least 1 and max_file_bytes not negative")
    if limits.max_message_bytes < limits.segment_size + (64 << 10):
        raise ConfigError("[limits] max_message_bytes must exceed segment_size by 64 KiB")
    delivery = DeliveryPolicy(**values.get("delivery", {}))
    if not 1 <= delivery.batch_size <= MAX_DELIVERY_BATCH:
        raise ConfigError(f"[delivery] batch_size must be between 1 and {MAX_DELIVERY_BATCH}")
    if delivery.workers < 1:
        raise ConfigError("[delivery] workers must be at least 1")
    if limits.max_anonymous_verify_bytes < 1:
        raise ConfigError("[limits] max_anonymous_verify_bytes must be at least 1")
    admission = AdmissionPolicy(**values.get("admission", {}))
    admission.check()
    web = _web_site(values.get("web", {}))
    verification_url = get("seals", "verification_url", "")
    if web.site_url:
        if verification_url:
            raise ConfigError(
                "[seals] verification_url and [web] site_url both set: QR codes carry the "
                "site's address; remove verification_url"
            )
        verification_url = web.site_url.rstrip("/") + "/v"
    longest_transfer_seconds = get("storage", "longest_transfer_seconds", 21600.0)
    if not longest_transfer_seconds > 0:
        raise ConfigError("[storage] longest_transfer_seconds must be above 0")
    health_probe_seconds = get("node", "health_probe_seconds", 5.0)
    if not health_probe_seconds > 0:
        raise ConfigError("[node] health_probe_seconds must be above 0")
    skew_tolerance = get("node", "clock_skew_tolerance_seconds", 5.0)
    skew_refuse = get("node", "clock_skew_refuse_seconds", 120.0)
    if not 0 < skew_tolerance <= skew_refuse:
        raise ConfigError(
            "[node] clock_skew_tolerance_seconds must be above 0 and at most "
            "clock_skew_refuse_seconds"
        )
    return NodeConfig(
        node_id=need("node", "id"),
        listen=get("node", "listen", "127.0.0.1:50051"),
        public_listen=get("node", "public_listen", ""),
        verification_url=verification_url,
        web=web,
        seals_dir=get("seals", "dir", None),
        result_seal=get("seals", "result_seal", ""),
        status_list_hours=get("seals", "status_list_hours", 24.0),
        orphan_sweep_seconds=get("storage", "orphan_sweep_seconds", 3600.0),
        longest_transfer_seconds=longest_transfer_seconds,
        shutdown_grace_seconds=get("node", "shutdown_grace_seconds", 30.0),
        health_probe_seconds=health_probe_seconds,
        clock_skew_tolerance_seconds=skew_tolerance,
        clock_skew_refuse_seconds=skew_refuse,
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
        supervision_seconds=get("matters", "supervision_seconds", 300.0),
        limits=limits,
        delivery=delivery,
        admission=admission,
    )


def _web_site(values: Mapping[str, Any]) -> WebSite:
    web = WebSite(**values)
    if web.site_url and not web.site_url.startswith(("https://", "http://")):
        raise ConfigError(f"[web] site_url {web.site_url!r} must start with https:// or http://")
    if web.max_upload_bytes < 1:
        raise ConfigError("[web] max_upload_bytes must be at least 1")
    if web.requests_per_minute < 1:
        raise ConfigError("[web] requests_per_minute must be at least 1")
    if (web.tls_cert is None) != (web.tls_key is None):
        raise ConfigError("[web] tls_cert and tls_key go together")
    return web
