"""Who is calling: the identity in the caller's mTLS certificate, as the directory allows it."""

from __future__ import annotations

import threading
from datetime import datetime

import grpc

from tongban.keys.directory import FederationDirectory
from tongban.keys.errors import KeysError
from tongban.keys.pki import Identity, load_certificate
from tongban.keys.trust import CLIENT_AUTH, authenticate_certificate
from tongban.server.domain.errors import Unauthenticated

__all__ = ["caller_identity"]


def caller_identity(context: grpc.ServicerContext, directory: FederationDirectory) -> Identity:
    """The verified identity in the caller's mTLS certificate.

    The TLS handshake checked the chain to the federation root; the identity counts only
    if the identity CA the directory lists for the caller's node issued the certificate
    (:func:`tongban.keys.trust.authenticate_certificate`).

    Raises:
        Unauthenticated: no client certificate, or one that may not claim its identity.
    """
    auth = context.auth_context()
    pems: list[bytes] = list(auth.get("x509_pem_cert") or [])  # type: ignore[arg-type]
    if not pems:
        raise Unauthenticated("a client certificate issued by the federation root is required")
    try:
        return _identity_in(pems[0], directory)
    except KeysError as exc:
        raise Unauthenticated(f"{exc.code}: {exc.message}") from None


_AUTHENTICATED: dict[tuple[bytes, int, datetime], Identity] = {}
_AUTHENTICATED_LOCK = threading.Lock()
_AUTHENTICATED_MAX = 1024


def _identity_in(pem: bytes, directory: FederationDirectory) -> Identity:
    # What a certificate may claim depends on its bytes and the directory version alone,
    # so each accepted pair is checked once rather than on every call.
    key = (pem, directory.version, directory.issued_at)
    with _AUTHENTICATED_LOCK:
        known = _AUTHENTICATED.get(key)
    if known is not None:
        return known
    identity = authenticate_certificate(load_certificate(pem), directory, usage=CLIENT_AUTH)
    with _AUTHENTICATED_LOCK:
        if len(_AUTHENTICATED) >= _AUTHENTICATED_MAX:
            _AUTHENTICATED.clear()
        _AUTHENTICATED[key] = identity
    return identity
