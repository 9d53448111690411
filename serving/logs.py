"""Structured logs: one JSON object a line, BentoML's access log included (MNISTSERVE_JSON_LOGS=1).

BentoML 1.4 has no JSON log format: its service option `logging={"access": ...}` only switches fields of the
access line on and off, and its server logging config formats text. Each worker configures that logging before
it imports the service, so the service, at import, swaps the formatter of the handlers BentoML installed for
`JsonFormatter` (`use_json_logs`). BentoML's filter on those handlers still runs first and adds request_id.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

ACCESS_LOGGER = "bentoml.access"
# BentoML's access line is "%s (%s) (%s) %.3fms" of: client, "scheme=..,method=..,path=..[,type=..][,length=..]",
# "status=..[,type=..][,length=..]", latency. The path may hold commas, so it is matched up to the optional fields.
_REQUEST = re.compile(
    r"scheme=(?P<scheme>[^,]*),method=(?P<method>[^,]*),path=(?P<path>.*?)"
    r"(?:,type=(?P<request_type>[^,]*))?(?:,length=(?P<request_length>\d*))?"
)
_RESPONSE = re.compile(
    r"status=(?P<status>\d+)(?:,type=(?P<response_type>[^,]*))?"
    r"(?:,length=(?P<response_length>\d*))?"
)
_INTEGERS = ("status", "request_length", "response_length")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message, and the access line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == ACCESS_LOGGER:
            entry.update(access_fields(record.args))
        request_id = getattr(record, "request_id", None)  # set by BentoML's TraceRecordFilter during a request
        if request_id:
            entry["request_id"] = str(request_id)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def access_fields(args: Any) -> dict[str, Any]:
    """BentoML's access-line arguments as fields; none when their shape is not the one known here."""
    if not (isinstance(args, tuple) and len(args) == 4 and all(isinstance(a, str) for a in args[:3])):
        return {}
    client, request, response, latency_ms = args
    request_match, response_match = _REQUEST.fullmatch(request), _RESPONSE.fullmatch(response)
    if request_match is None or response_match is None:
        return {}
    fields: dict[str, Any] = {"client": client, **request_match.groupdict(), **response_match.groupdict()}
    fields = {k: v for k, v in fields.items() if v not in (None, "")}
    for key in _INTEGERS:
        if key in fields:
            fields[key] = int(fields[key])
    fields["latency_ms"] = round(float(latency_ms), 3)
    return fields


def use_json_logs(logger_names: tuple[str, ...] = ("", "bentoml")) -> None:
    """Give every handler of these loggers (root and BentoML's, by default) the JSON formatter."""
    formatter = JsonFormatter()
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
