"""tongban.storage."""

__all__: list[str] = []
