"""Requests and responses of the serving handler: content types, Accept, and 4xx answers to bad input.

Request bodies (Content-Type):
  application/json        {"instances": [...]}, {"texts": [...]}, a JSON list, {"text": "..."} or a JSON string;
                          an item is a string or an object with a "text" string
  application/jsonlines   one item per line (a JSON string or {"text": ...}); blank lines are skipped
                          (also application/jsonl, application/x-jsonlines)
  text/plain              one text per line (split on \\n only; a final line break ends the last text)
Responses (Accept): application/json (the default, also for */*) is a JSON list of records
{"text", "tags", "entities"}; application/jsonlines is one record per line, in request order.
A request the handler cannot answer raises RequestError with its HTTP status (400, 406, 415) and a
message naming the line or item. Standard library only (see infer/serving.py).
"""
from __future__ import annotations

import codecs
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

JSON = "application/json"
JSONLINES = "application/jsonlines"
TEXT = "text/plain"
JSONLINES_TYPES = (JSONLINES, "application/jsonl", "application/x-jsonlines")
REQUEST_TYPES = (JSON, TEXT) + JSONLINES_TYPES
STATUS_LINES = {400: "400 Bad Request", 406: "406 Not Acceptable", 415: "415 Unsupported Media Type"}
ITEM_HELP = 'a string or {"text": "..."}'
BODY_HELP = ('{"instances": [text, ...]}, {"texts": [...]}, a JSON list of texts, {"text": "..."} or a JSON string '
             f"(a text: {ITEM_HELP})")


class RequestError(ValueError):
    """A request the handler refuses: its HTTP status and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def status_line(self) -> str:
        return STATUS_LINES.get(self.status, f"{self.status} Client Error")

    def body(self) -> bytes:
        """The JSON error body: {"error": message, "status": code}."""
        return json.dumps({"error": self.message, "status": self.status}, ensure_ascii=False).encode("utf-8")


def _media(header: Optional[str]) -> Tuple[str, Dict[str, str]]:
    """("type/subtype" lower-cased, {parameter: value}) of a Content-Type or Accept entry."""
    parts = (header or "").split(";")
    params = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].strip().lower(), params


def _decode(body: bytes, charset: Optional[str]) -> str:
    name = charset or "utf-8"
    try:
        codec = codecs.lookup(name)
    except LookupError:
        raise RequestError(415, f"charset {name!r} is not known; send UTF-8") from None
    try:
        return body.decode(codec.name).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the body is not valid {name} (byte {exc.start}: {exc.reason})") from None


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RequestError(400, f"{where}: not valid JSON ({exc})") from None


def _item(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "text" in value:
        if isinstance(value["text"], str):
            return value["text"]
        raise RequestError(400, f'{where}: "text" must be a string, got {_kind(value["text"])}')
    raise RequestError(400, f"{where}: expected {ITEM_HELP}, got {_kind(value)}")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _json_texts(text: str) -> List[str]:
    data = _json(text, "request body")
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        for key in ("instances", "texts"):
            if key in data:
                items = data[key]
                if not isinstance(items, list):
                    raise RequestError(400, f'"{key}" must be a list of texts, got {_kind(items)}')
                return [_item(v, f"{key}[{i}]") for i, v in enumerate(items)]
        if "text" in data:
            return [_item(data, "request body")]
        keys = ", ".join(sorted(map(str, data))[:10]) or "none"
        raise RequestError(400, f'no "instances", "texts" or "text" field (keys: {keys}); expected {BODY_HELP}')
    if isinstance(data, list):
        return [_item(v, f"item {i}") for i, v in enumerate(data)]
    raise RequestError(400, f"expected {BODY_HELP}; got {_kind(data)}")


def parse_request(body: bytes, content_type: Optional[str]) -> List[str]:
    """The texts of a request body; RequestError (400/415) naming what is wrong."""
    media, params = _media(content_type or JSON)
    if media not in REQUEST_TYPES:
        raise RequestError(415, f"Content-Type {media or '(empty)'!r} is not supported; send one of "
                                f"{', '.join(REQUEST_TYPES)}")
    text = _decode(body, params.get("charset"))
    if media == JSON:
        return _json_texts(text)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the line break that ends the last line
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if media == TEXT:
        return lines
    return [_item(_json(line, f"line {n}"), f"line {n}") for n, line in enumerate(lines, 1) if line.strip()]


def response_type(accept: Optional[str]) -> str:
    """The response media type for an Accept header: JSON (the default, and for */*) or the JSON-lines type the
    client named; RequestError 406 if it accepts neither."""
    entries = []
    for order, entry in enumerate((accept or "").split(",")):
        media, params = _media(entry)
        if not media:
            continue
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        entries.append((-q, order, media))
    if not entries:
        return JSON
    for neg_q, _, media in sorted(entries):
        if neg_q >= 0:  # q=0: "not acceptable"
            continue
        if media in (JSON, "*/*", "application/*"):
            return JSON
        if media in JSONLINES_TYPES:
            return media
    raise RequestError(406, f"Accept {accept!r}: the answer can be {JSON} or {JSONLINES}")


def render(records: Sequence[Dict], media: str) -> bytes:
    """Records as a JSON list or as JSON lines (one per record, each ending in a line break)."""
    if media in JSONLINES_TYPES:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    return json.dumps(list(records), ensure_ascii=False).encode("utf-8")
