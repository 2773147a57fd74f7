"""Writes, one module per subject. Pages, the API, commands and the worker call these; none imports torch."""


def error_text(error: BaseException, *, limit: int = 2000) -> str:
    """An exception as words for a status field or a report: its class, then its message when it has one."""
    name = type(error).__name__
    return (f"{name}: {error}" if str(error) else name)[:limit]
