"""Logging filters named in settings.LOGGING."""

from __future__ import annotations

import logging


class RefusalsOneLine(logging.Filter):
    """An expected refusal (a 4xx: 400, 401, 403, 404, 405, 409, 413, 429) is one log line. Django logs a
    raised PermissionDenied, BadRequest or SuspiciousOperation with its traceback, which buries the 5xx
    tracebacks that matter; those (no status, or 500 and up) keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status_code = getattr(record, "status_code", None)
        if isinstance(status_code, int) and 400 <= status_code < 500:
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True
