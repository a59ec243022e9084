"""tongban.keys."""

__all__: list[str] = []
