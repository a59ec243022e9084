"""``tongban federation init``: write a new federation as one folder per node.

OUT/root/            the root key and certificate: keep the key offline
OUT/offline/<node>/  the node's identity CA (issues its TLS, hall and admin certificates):
                     keep it offline, with the node's administrators
OUT/public/          root.pem and directory.json, for third-party verifiers (0644); each
                     node's lists join them with ``tongban published fetch --out OUT/public``
OUT/<node>/          everything one node needs: copy it to that node
    node.toml  root.pem  directory.json  tls/  keys/  seals/  halls/<hall>/  admins/<admin>/

``tongban federation migrate`` moves a federation written before that hierarchy
(docs/adr/0004-certificate-hierarchy.md) onto it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tongban.keys.clock import parse_time, require_aware
from tongban.keys.directory import (
    DIRECTORY_PAYLOAD_TYPE,
    FederationDirectory,
    NodeEntry,
    sign_directory,
)
from tongban.keys.envelope import Envelope, parse_json_object, verify_envelope
from tongban.keys.errors import CallerError
from tongban.keys.federation import ClientIdentity, Federation, NodeSpec, create_federation
from tongban.keys.keyring import save_private_keys
from tongban.keys.pki import (
    CaKind,
    Role,
    certificate_pem,
    generate_signing_key,
    identity_from_certificate,
    issue_ca,
    issue_certificate,
    load_certificate,
    load_private_key,
    write_private_key,
)
from tongban.keys.signing import PrivateKeySigner, key_id_of

__all__ = ["migrate_federation", "node_specs", "write_federation"]


def node_specs(
    node_ids: Sequence[str],
    *,
    base_port: int,
    host: str,
    endpoints: dict[str, str],
    names: dict[str, str],
    halls: int = 2,
    public_endpoints: dict[str, str] | None = None,
) -> list[NodeSpec]:
    """Specs for the given GB/T 2260 node ids, ports counting up from ``base_port``.

    Each node's public verification port is ``base_port + 100 + i`` unless given.
    """
    from tongban.keys.identifiers import region_name, validate_division_code

    specs = []
    for i, node_id in enumerate(node_ids):
        validate_division_code(node_id)
        name = names.get(node_id) or region_name(node_id) or f"node {node_id}"
        endpoint = endpoints.get(node_id, f"{host}:{base_port + i}")
        public = (public_endpoints or {}).get(
            node_id, f"{host}:{base_port + 100 + i}" if node_id not in endpoints else ""
        )
        specs.append(NodeSpec(node_id, name, endpoint, public_endpoint=public, hall_count=halls))
    return specs


def _write_client(
    folder: Path,
    who: ClientIdentity,
    fed: Federation,
    node_id: str,
    endpoint: str,
    identity_ca_pem: bytes,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # The chain up to (not including) the root, so a server trusting the root can build it.
    (folder / "cert.pem").write_bytes(certificate_pem(who.certificate) + identity_ca_pem)
    write_private_key(folder / "key.pem", who.key)
    (folder / "root.pem").write_bytes(certificate_pem(fed.root_certificate))
    (folder / f"{who.role.value}.toml").write_text(
        f"# {who.role.value} {who.name} of node {node_id}\n"
        f'node_id = "{node_id}"\nname = "{who.name}"\nendpoint = "{endpoint}"\n',
        encoding="utf-8",
    )


def write_federation(out: Path, specs: Sequence[NodeSpec], *, now: datetime) -> Federation:
    """Create the federation and write its folders under ``out`` (which must not exist or be empty).

    Raises:
        FileExistsError: ``out`` already holds files.
    """
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; refusing to overwrite a federation")
    fed = create_federation(specs, now=now)
    root_pem = certificate_pem(fed.root_certificate)
    directory_json = json.dumps(fed.signed_directory.to_json_dict(), indent=1) + "\n"
    (out / "root").mkdir(parents=True)
    (out / "root").chmod(0o700)
    (out / "root" / "root.pem").write_bytes(root_pem)
    write_private_key(out / "root" / "root-key.pem", fed.root_key)
    # public/ is for anyone who verifies: readable by all whatever the umask.
    (out / "public").mkdir()
    (out / "public").chmod(0o755)
    (out / "public" / "root.pem").write_bytes(root_pem)
    (out / "public" / "directory.json").write_text(directory_json, encoding="utf-8")
    for published in ("root.pem", "directory.json"):
        (out / "public" / published).chmod(0o644)
    for node in fed.nodes:
        d = out / node.spec.node_id
        (d / "tls").mkdir(parents=True)
        (d / "root.pem").write_bytes(root_pem)
        (d / "directory.json").write_text(directory_json, encoding="utf-8")
        ca_pem = certificate_pem(node.identity_ca_certificate)
        (d / "tls" / "node.pem").write_bytes(certificate_pem(node.tls_certificate) + ca_pem)
        write_private_key(d / "tls" / "node-key.pem", node.tls_key)
        offline = out / "offline" / node.spec.node_id
        offline.mkdir(parents=True, mode=0o700)
        offline.parent.chmod(0o700)
        (offline / "identity-ca.pem").write_bytes(ca_pem)
        write_private_key(offline / "identity-ca-key.pem", node.identity_ca_key)
        save_private_keys(d / "keys", node.signing_keys, node.encryption_keys)
        (d / "seals").mkdir(mode=0o700)
        (d / "seals" / "ca.pem").write_bytes(certificate_pem(node.seal_ca_certificate))
        write_private_key(d / "seals" / "ca-key.pem", node.seal_ca_key)
        for hall in node.halls:
            _write_client(
                d / "halls" / hall.name, hall, fed, node.spec.node_id, node.spec.endpoint, ca_pem
            )
        for admin in node.admins:
            _write_client(
                d / "admins" / admin.name,
                admin,
                fed,
                node.spec.node_id,
                node.spec.endpoint,
                ca_pem,
            )
        (d / "node.toml").write_text(_node_toml(node.spec), encoding="utf-8")
    return fed


def _node_toml(spec: NodeSpec) -> str:
    return f"""# Relay node {spec.node_id} ({spec.name}). Paths are relative to this file.
# Any key can be overridden by the environment: TONGBAN_<SECTION>_<KEY>.

[node]
id = "{spec.node_id}"
listen = "{spec.endpoint}"
# VerifyService for third parties (TLS, no client certificate); empty to disable.
public_listen = "{spec.public_endpoint}"

[tls]
cert = "tls/node.pem"
key = "tls/node-key.pem"
root = "root.pem"

[federation]
directory = "directory.json"
refresh_seconds = 300

[keys]
dir = "keys"

[seals]
# The node's seal CA (issued by the federation root; it can issue seal certificates only)
# and the registered seals' keys.
dir = "seals"
# Seal applied to every result document this node returns (empty: the newest usable
# registered seal). A result is refused while the node has no usable seal.
result_seal = ""

[web]
# The verification site anyone reaches from a sealed document's QR code, served over HTTPS
# (e.g. listen = "0.0.0.0:8443"; empty: no site). New seals' QR codes carry site_url, the
# address the public reaches the site at.
listen = ""
site_url = "https://verify.example/{spec.node_id}"

[storage]
# Embedded defaults: SQLite (WAL) and a local filesystem store under var/.
database = "sqlite:///var/metadata.db"
objects = "var/blobs"
# Production: database = "postgresql://relay@db.example/tongban"
#             objects = "s3://s3.example:9000/tongban-{spec.node_id}?secure=true"
#             with TONGBAN_STORAGE_S3_ACCESS_KEY / TONGBAN_STORAGE_S3_SECRET_KEY set.

[delivery]
initial_backoff = 0.5
multiplier = 2.0
max_backoff = 60.0
workers = 8
"""


def _pem_chain(leaf: x509.Certificate, ca: x509.Certificate) -> bytes:
    return certificate_pem(leaf) + certificate_pem(ca)


def _certified_key(path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePublicKey]:
    """The first certificate in ``path`` and its ECDSA public key, to re-issue for that key."""
    cert = load_certificate(path.read_bytes())
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise CallerError(f"{path} does not hold an ECDSA key")
    return cert, public


def _reissue_client(
    folder: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, now: datetime
) -> None:
    old, public = _certified_key(folder / "cert.pem")
    who = identity_from_certificate(old)
    cert = issue_certificate(
        ca_key, ca, public, role=who.role, node_id=who.node_id, name=who.name, now=now
    )
    (folder / "cert.pem").write_bytes(_pem_chain(cert, ca))


def migrate_federation(fed: Path, *, now: datetime) -> FederationDirectory:
    """Move a federation written before ADR 0004 onto the certificate hierarchy.

    For every node: a new identity CA (kept under ``fed/offline/<node>/``), the node's TLS
    certificate and its halls' and admins' certificates re-issued by it for the keys they
    already have, and the seal CA certificate re-issued for the same key and name with
    document-signing usages only (so seals made before still chain). Then the next
    directory version, listing both CAs of every node, signed by the root. Private keys of
    nodes, halls, admins and seals do not change. Restart every node with its folder.

    Raises:
        CallerError: the folder is not a federation, a node folder is missing, or it was
            migrated already.
        KeysError: the current directory does not verify under the root.
    """
    now = require_aware(now, "now")
    try:
        root_key = load_private_key((fed / "root" / "root-key.pem").read_bytes())
        root = load_certificate((fed / "root" / "root.pem").read_bytes())
        envelope = Envelope.from_json_dict(
            parse_json_object((fed / "public" / "directory.json").read_bytes(), "directory")
        )
    except FileNotFoundError as exc:
        raise CallerError(f"{fed} is not a federation folder: {exc.filename} is missing") from None
    if not isinstance(root_key, ec.EllipticCurvePrivateKey) or root.public_key() != (
        root_key.public_key()
    ):
        raise CallerError("root/root-key.pem is not the ECDSA key of root/root.pem")
    root_public = root_key.public_key()
    verify_envelope(
        envelope, {key_id_of(root_public): root_public}, payload_type=DIRECTORY_PAYLOAD_TYPE
    )
    data = parse_json_object(envelope.payload, "directory")
    nodes: list[dict[str, Any]] = [dict(n) for n in data["nodes"]]
    if all("identity_ca" in n for n in nodes):
        raise CallerError(f"the directory of {fed} lists identity CAs already: nothing to migrate")
    for n in nodes:
        node_id = str(n["node_id"])
        folder = fed / node_id
        if not (folder / "tls" / "node.pem").is_file():
            raise CallerError(
                f"{folder} is missing: migration re-issues every node's certificates and needs "
                "each node folder as `tongban federation init` wrote it"
            )
        ca_key = generate_signing_key()
        ca = issue_ca(
            root_key, root, ca_key.public_key(), kind=CaKind.IDENTITY, node_id=node_id, now=now
        )
        offline = fed / "offline" / node_id
        offline.mkdir(parents=True, mode=0o700, exist_ok=True)
        (offline / "identity-ca.pem").write_bytes(certificate_pem(ca))
        write_private_key(offline / "identity-ca-key.pem", ca_key)
        _, node_key = _certified_key(folder / "tls" / "node.pem")
        node_cert = issue_certificate(
            ca_key, ca, node_key, role=Role.NODE, node_id=node_id, name=node_id, now=now
        )
        (folder / "tls" / "node.pem").write_bytes(_pem_chain(node_cert, ca))
        for kind in ("halls", "admins"):
            for client in sorted((folder / kind).glob("*/cert.pem")):
                _reissue_client(client.parent, ca_key, ca, now)
        old_seal_ca, seal_key = _certified_key(folder / "seals" / "ca.pem")
        seal_ca = issue_ca(
            root_key,
            root,
            seal_key,
            kind=CaKind.SEAL,
            node_id=node_id,
            now=now,
            not_before=old_seal_ca.not_valid_before_utc,
            not_after=old_seal_ca.not_valid_after_utc,
        )
        (folder / "seals" / "ca.pem").write_bytes(certificate_pem(seal_ca))
        n.update(
            certificate=certificate_pem(node_cert).decode(),
            identity_ca=certificate_pem(ca).decode(),
            seal_ca=certificate_pem(seal_ca).decode(),
        )
    directory = FederationDirectory(
        version=int(data["version"]) + 1,
        issued_at=now,
        expires_at=max(parse_time(data["expires_at"]), now + timedelta(days=365)),
        nodes=tuple(NodeEntry.from_json_dict(n) for n in nodes),
        seals=tuple(data.get("seals", [])),
    )
    signed = sign_directory(directory, PrivateKeySigner(root_key))
    text = json.dumps(signed.to_json_dict(), indent=1) + "\n"
    (fed / "public" / "directory.json").write_text(text, encoding="utf-8")
    for n in nodes:
        (fed / str(n["node_id"]) / "directory.json").write_text(text, encoding="utf-8")
    return directory
