"""A node's persistence: SQL metadata with its migrations, and object stores for blobs.

Storage holds opaque bytes: it knows no keys, node or client.
"""

__all__: list[str] = []
