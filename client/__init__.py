"""The client SDK: a hall's connection to its node, seal clients, and offline verification."""

__all__: list[str] = []
