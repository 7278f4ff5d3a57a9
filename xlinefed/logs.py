"""Structured logging: one line per event, `event key=value ...`, or JSON lines."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any


class _KeyValueFormatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self._as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        if self._as_json:
            payload = {
                "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": record.getMessage(),
                **fields,
            }
            return json.dumps(payload, default=str)
        pairs = " ".join(f"{key}={_quote(value)}" for key, value in fields.items())
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        level = record.levelname.lower()
        return f"{stamp} {level:5} {record.name} {record.getMessage()} {pairs}".rstrip()


def _quote(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


class StructuredLogger(logging.LoggerAdapter[logging.Logger]):
    """`log.info("step applied", step="AddLearner", member="f-a-3")`."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in _LOGGING_KWARGS}
        kwargs.setdefault("extra", {})["fields"] = fields
        return msg, kwargs


_LOGGING_KWARGS = {"exc_info", "stack_info", "stacklevel", "extra"}


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(name), {})


def configure(level: str | None = None, as_json: bool | None = None) -> None:
    """Configure the root logger once; `XLINEFED_LOG_LEVEL` and `XLINEFED_LOG_JSON` override."""
    level = level or os.environ.get("XLINEFED_LOG_LEVEL", "INFO")
    if as_json is None:
        as_json = os.environ.get("XLINEFED_LOG_JSON", "") not in ("", "0", "false")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter(as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
