"""Log output of ``clearpost serve``: readable lines by default, JSON lines on request.

Nothing Clearpost logs carries a token, a password, a key or a ciphertext; the access log
names the route template a request matched (``/v1/conversations/{conversation_id}/...``),
never the path itself, so ids and link tokens in paths stay out of it too.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

TEXT_FORMAT = "%(levelname)s:     %(name)s: %(message)s"
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (RFC 3339, UTC), ``level``, ``logger``,
    ``message``, any ``extra`` fields, and ``error`` with the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


def configure(level: str, fmt: str) -> None:
    """Send every logger (Clearpost's and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("clearpost", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(level.upper())
