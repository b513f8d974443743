"""Log lines as JSON objects or plain text, each carrying the request it belongs to.

The service sets :data:`request_id` for the span of each request (a context
variable, so it follows the request into worker threads); every record logged
meanwhile carries it. Records are handed to a queue and written by a thread of
their own, so logging never blocks the event loop on a slow terminal or pipe.

Only the program that runs (``cadastre serve``) calls :func:`configure`; the
library and the app only log.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Literal

#: The id of the request being served, or None outside a request.
request_id: ContextVar[str | None] = ContextVar("cadastre_request_id", default=None)

#: Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged
#: (except uvicorn's ``color_message``, the message again with terminal colours).
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (in the thread that logs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted already, before the record was queued
            line["exc"] = record.exc_text
        return json.dumps(line, default=str)


PLAIN = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _Queued(logging.handlers.QueueHandler):
    """Keeps the record's extras for the formatter (the stock one flattens the record)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.message = record.getMessage()
        record.msg, record.args = record.message, None
        if record.exc_info:  # tracebacks do not pickle or travel well: format them here
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


_listener: logging.handlers.QueueListener | None = None


def configure(
    fmt: Literal["json", "plain"] | None = None,
    level: str = "INFO",
    stream: IO[str] | None = None,
) -> None:
    """Send every log record (the service's and uvicorn's) to ``stream`` (stderr).

    ``fmt`` None chooses plain text on a terminal, JSON otherwise. Calling it
    again replaces the previous set-up.
    """
    global _listener
    shutdown()
    stream = stream or sys.stderr
    if fmt is None:
        fmt = "plain" if stream.isatty() else "json"
    out = logging.StreamHandler(stream)
    out.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(PLAIN))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _Queued(records)
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Queued)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own records go through the same handler, as the same kind of line.
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    _listener = logging.handlers.QueueListener(records, out, respect_handler_level=False)
    _listener.start()


def shutdown() -> None:
    """Write out what is queued and stop the writing thread (idempotent)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Queued)]:
        root.removeHandler(old)
