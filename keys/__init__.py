"""The federation's cryptography: PKI, keys, signed statements, content encryption, seals.

Pure code over bytes and certificates: no storage, transport, SQL, node or client.
"""

__all__: list[str] = []
