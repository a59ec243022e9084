"""The relay node: configuration, domain, use cases, gRPC transport, jobs, and the app."""

__all__: list[str] = []
