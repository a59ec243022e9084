"""Opening an object store from a URL and options."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from tongban.storage.objects._base import (
    DEFAULT_PART_SIZE,
    ObjectStore,
    ObjectStoreConfigError,
)
from tongban.storage.objects._filesystem import FilesystemObjectStore
from tongban.storage.objects._s3 import S3ObjectStore

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_S3_OPTIONS = frozenset(
    {"access_key", "secret_key", "secure", "region", "part_size", "create_bucket"}
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _as_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ObjectStoreConfigError(f"{name} must be true or false, not {value!r}")


def _as_part_size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ObjectStoreConfigError(f"part_size must be a whole number of bytes, not {value!r}")


def _credential(name: str, in_url: str, option: object) -> str:
    given = "" if option is None else str(option)
    if in_url and given and in_url != given:
        raise ObjectStoreConfigError(f"the {name} is given both in the URL and as an option")
    return in_url or given


def open_object_store(url: str, **options: object) -> ObjectStore:
    """Open the store a URL names.

    ``file:///abs/path`` or a bare path opens a :class:`FilesystemObjectStore`.
    ``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=R&part_size=N`` opens an
    :class:`S3ObjectStore`; the credentials may instead come as options (e.g. from the
    environment) and must be percent-encoded in the URL when they contain ``/`` or ``@``.

    Args:
        url: the store's URL.
        options: ``access_key``, ``secret_key``, ``secure``, ``region``, ``part_size`` and
            ``create_bucket`` (default true); they apply to S3 only, and a filesystem store
            ignores them. Empty values count as absent.

    Raises:
        ObjectStoreConfigError: the URL or an option is malformed, unknown or contradictory.
        ObjectStoreUnavailable: the S3 server could not be reached.
    """
    unknown = sorted(set(options) - _S3_OPTIONS)
    if unknown:
        raise ObjectStoreConfigError(f"unknown object store options: {', '.join(unknown)}")
    if not url.strip():
        raise ObjectStoreConfigError("the object store URL is empty")
    if not _SCHEME.match(url):
        return FilesystemObjectStore(Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise ObjectStoreConfigError(
                f"a file URL must name a local path (file:///path), not host {parts.netloc!r}"
            )
        if parts.query or parts.fragment:
            raise ObjectStoreConfigError("a file URL takes no query or fragment")
        return FilesystemObjectStore(Path(unquote(parts.path)))
    if scheme != "s3":
        raise ObjectStoreConfigError(
            f"unsupported object store scheme {parts.scheme!r} (use file:// or s3://)"
        )
    return _open_s3(parts.netloc, parts.path, parts.query, parts.fragment, options)


def _open_s3(
    netloc: str, path: str, query: str, fragment: str, options: dict[str, object]
) -> S3ObjectStore:
    userinfo, _, hostport = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    if not hostport:
        raise ObjectStoreConfigError("an s3:// URL needs a host: s3://host:port/bucket")
    bucket = path.strip("/")
    if not bucket or "/" in bucket:
        raise ObjectStoreConfigError("an s3:// URL names exactly one bucket: s3://host:port/bucket")
    if fragment:
        raise ObjectStoreConfigError("an s3:// URL takes no fragment")
    settings: dict[str, object] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in {"secure", "region", "part_size"}:
            raise ObjectStoreConfigError(f"unknown s3:// URL parameter {name!r}")
        if name in settings:
            raise ObjectStoreConfigError(f"the s3:// URL parameter {name!r} is repeated")
        settings[name] = value
    parse: dict[str, Callable[[object], object]] = {
        "secure": lambda v: _as_bool("secure", v),
        "region": str,
        "part_size": _as_part_size,
    }
    for name, convert in parse.items():
        option = options.get(name)
        if option is None or option == "":
            continue
        if name in settings and convert(settings[name]) != convert(option):
            raise ObjectStoreConfigError(f"{name} is given both in the URL and as an option")
        settings[name] = option
    access_key = _credential("access key", unquote(user), options.get("access_key"))
    secret_key = _credential("secret key", unquote(password), options.get("secret_key"))
    if not access_key or not secret_key:
        raise ObjectStoreConfigError(
            "an s3:// store needs credentials: s3://ACCESS:SECRET@host/bucket "
            "or the access_key and secret_key options"
        )
    region = str(settings["region"]) if settings.get("region") else None
    return S3ObjectStore(
        hostport,
        access_key=access_key,
        secret_key=secret_key,
        bucket=unquote(bucket),
        secure=_as_bool("secure", settings.get("secure", True)),
        region=region,
        part_size=_as_part_size(settings.get("part_size", DEFAULT_PART_SIZE)),
        create_bucket=_as_bool("create_bucket", options.get("create_bucket", True)),
    )
