"""`--log-format text|json`: how the gateway's log lines are written.

json writes one object per line (time, level, logger, message, and for a call's line the
boundary's fields under `rpc`), which log collectors (Loki, Elasticsearch, Cloud Logging) read
without a parsing rule. Chat text and audio never reach these fields: the boundary logs sizes.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; a call's record carries its fields (gateway.boundary) as `rpc`."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "rpc", None)
        if isinstance(fields, dict):
            entry["rpc"] = fields
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        from gateway.boundary import EscapingFormatter  # no request field can forge a text log line

        return EscapingFormatter(TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")


def configure_logging(level: str, log_format: str = "text") -> None:
    """The root logger's one handler (stderr) with the chosen format; called once by each entry point."""
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # it logs every clip at INFO
