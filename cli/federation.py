"""``tongban federation init``: write a new federation as one folder per node.

OUT/root/            the root key and certificate: keep the key offline
OUT/public/          root.pem and directory.json, for third-party verifiers
OUT/<node>/          everything one node needs: copy it to that node
    node.toml  root.pem  directory.json  tls/  keys/  halls/<hall>/  admins/<admin>/
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from tongban.keys.federation import ClientIdentity, Federation, NodeSpec, create_federation
from tongban.keys.keyring import save_private_keys
from tongban.keys.pki import certificate_pem, write_private_key

__all__ = ["node_specs", "write_federation"]


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
    folder: Path, who: ClientIdentity, fed: Federation, node_id: str, endpoint: str
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(certificate_pem(who.certificate))
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
    (out / "public").mkdir()
    (out / "public" / "root.pem").write_bytes(root_pem)
    (out / "public" / "directory.json").write_text(directory_json, encoding="utf-8")
    for node in fed.nodes:
        d = out / node.spec.node_id
        (d / "tls").mkdir(parents=True)
        (d / "root.pem").write_bytes(root_pem)
        (d / "directory.json").write_text(directory_json, encoding="utf-8")
        (d / "tls" / "node.pem").write_bytes(certificate_pem(node.tls_certificate))
        write_private_key(d / "tls" / "node-key.pem", node.tls_key)
        save_private_keys(d / "keys", node.signing_keys, node.encryption_keys)
        (d / "seals").mkdir(mode=0o700)
        (d / "seals" / "ca.pem").write_bytes(certificate_pem(node.seal_ca_certificate))
        write_private_key(d / "seals" / "ca-key.pem", node.seal_ca_key)
        for hall in node.halls:
            _write_client(d / "halls" / hall.name, hall, fed, node.spec.node_id, node.spec.endpoint)
        for admin in node.admins:
            _write_client(
                d / "admins" / admin.name, admin, fed, node.spec.node_id, node.spec.endpoint
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
# The node's seal CA (issued by the federation root) and the registered seals' keys.
dir = "seals"
# Seal applied automatically to result documents this node returns (empty: none).
result_seal = ""
# Published in QR codes of sealed documents.
verification_url = "https://verify.example/{spec.node_id}"

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
