"""Generated wire types of the tongban services (package ``tongban.relay.v1``).

The ``.proto`` files beside this module are the single source of truth; regenerate the
``*_pb2*`` modules and their ``.pyi`` stubs with ``scripts/gen-proto.sh``.
"""

__all__: list[str] = []
