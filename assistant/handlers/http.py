"""`http:` handlers: one HTTP request with a JSON body built from the slots.

Slot values are inserted as JSON *values* (a body string that is exactly `"{level}"` keeps the
slot's type, so 40 stays a number) and never concatenated into JSON text, and they are
URL-quoted (`/`, `?`, `&`, `#` included) where they appear in the URL. The scheme and host of
the URL may not contain placeholders, so no spoken word can redirect the request to another
machine. Proxies from the environment are ignored: requests go straight to the named host
(home-automation endpoints are local, and nothing said should leave the machine by accident).
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.yamlpos import PosDict, PosList, position
from assistant.handlers.spec import (
    HandlerFailure,
    HandlerSpec,
    RunContext,
    check_keys,
    describe,
    error_reply_of,
    fail,
    template_of,
    timeout_of,
    value_pos,
    want_mapping,
    want_str,
)
from assistant.handlers.templates import Template

DEFAULT_TIMEOUT_S = 5.0
RESPONSE_CAP = 1024 * 1024
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
KEYS = {"http", "error_reply"}
HTTP_KEYS = {"method", "url", "json", "headers", "timeout"}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class HttpHandler(HandlerSpec):
    method: str
    url: Template
    body: Any  # JSON-like structure whose strings are Templates
    headers: tuple[tuple[str, Template], ...]
    timeout: float
    references: tuple[tuple[str, int, int], ...]

    kind = "http"
    FIELDS = frozenset({"response", "status"})

    def slot_references(self) -> list[tuple[str, int, int]]:
        return list(self.references)

    def request(self, slots: Mapping[str, Any]) -> urllib.request.Request:
        """The request for these slots (also used by tests to check the encoding)."""
        url = self.url.render(slots, encode=lambda text: urllib.parse.quote(text, safe=""))
        headers = {}
        for name, tpl in self.headers:
            value = tpl.render(slots)
            if "\r" in value or "\n" in value:
                raise HandlerFailure(f"header {name} would contain a line break")
            headers[name] = value
        data = None
        if self.body is not None:
            data = json.dumps(_fill(self.body, slots)).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Accept", "application/json")
        return urllib.request.Request(url, data=data, headers=headers, method=self.method)

    def execute(self, slots: Mapping[str, Any], context: RunContext) -> dict[str, Any]:
        request = self.request(slots)
        try:
            with _OPENER.open(request, timeout=self.timeout) as reply:
                status = reply.status
                raw = reply.read(RESPONSE_CAP)
        except urllib.error.HTTPError as exc:
            body = exc.read(4096).decode("utf-8", errors="replace")
            raise HandlerFailure(f"{self.method} {request.full_url} answered HTTP {exc.code}", body) from exc
        except urllib.error.URLError as exc:
            raise HandlerFailure(f"cannot reach {request.full_url}: {exc.reason}") from exc
        except (TimeoutError, socket.timeout) as exc:
            raise HandlerFailure(f"{self.method} {request.full_url} timed out after {self.timeout:g} s") from exc
        except (OSError, ValueError) as exc:
            raise HandlerFailure(f"{self.method} {request.full_url} failed: {exc}") from exc
        if context.cancelled.is_set():
            raise HandlerFailure(f"{self.method} {request.full_url} was stopped")
        text = raw.decode("utf-8", errors="replace").strip()
        try:
            response: Any = json.loads(text) if text else ""
        except json.JSONDecodeError:
            response = text
        return {"response": response, "status": status}


def _fill(node: Any, slots: Mapping[str, Any]) -> Any:
    if isinstance(node, Template):
        return node.lookup(slots) if node.is_single_field else node.render(slots)
    if isinstance(node, dict):
        return {key: _fill(value, slots) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(value, slots) for value in node]
    return node


def parse_http(node: PosDict, path: Path, line: int, column: int) -> HttpHandler:
    check_keys(node, path, KEYS, "an http handler")
    spec = want_mapping(node, "http", path, "http handler")
    check_keys(spec, path, HTTP_KEYS, "http")
    if "url" not in spec:
        raise fail(path, (spec.line, spec.column), "http needs a 'url'")
    references: list[tuple[str, int, int]] = []

    def tpl(value: Any, where: tuple[int, int]) -> Template:
        template = template_of(value, path, where)
        references.extend((name, *where) for name in sorted(template.names))
        return template

    method = "GET"
    if "method" in spec:
        method = want_str(spec, "method", path, "http").upper()
        if method not in METHODS:
            raise fail(path, value_pos(spec, "method"), f"unknown HTTP method {spec['method']!r} (expected one of: {', '.join(sorted(METHODS))})")
    url_text = want_str(spec, "url", path, "http")
    url_where = value_pos(spec, "url")
    url = tpl(url_text, url_where)
    _check_url(url, path, url_where)
    body = None
    if "json" in spec:
        if method == "GET":
            raise fail(path, spec.pos_of("json"), "a GET request has no body: use POST/PUT/PATCH for 'json'")
        body = _body_templates(spec["json"], path, position(spec["json"], spec.pos_of("json")), tpl)
    headers: list[tuple[str, Template]] = []
    if "headers" in spec:
        header_map = want_mapping(spec, "headers", path, "http")
        for name, value in header_map.items():
            if not isinstance(name, str) or not name.strip() or any(c in name for c in ":\r\n "):
                raise fail(path, header_map.pos_of(name), f"bad header name {name!r}")
            if not isinstance(value, str):
                raise fail(path, position(value, header_map.pos_of(name)), f"header {name!r} must be text, got {describe(value)}")
            headers.append((str(name), tpl(value, position(value))))
    return HttpHandler(
        path=path,
        line=line,
        column=column,
        error_reply=error_reply_of(node, path),
        method=method,
        url=url,
        body=body,
        headers=tuple(headers),
        timeout=timeout_of(spec, path, DEFAULT_TIMEOUT_S),
        references=tuple(references),
    )


def _check_url(url: Template, path: Path, where: tuple[int, int]) -> None:
    """http(s) only, and no placeholder before the path: a slot must never pick the host."""
    first = url.fields[0].offset if url.fields else len(url.source)
    fixed = url.source[:first]
    parts = urllib.parse.urlsplit(fixed)
    if parts.scheme not in ("http", "https"):
        raise fail(path, where, f"url must start with http:// or https://, got {url.source!r}")
    if url.fields and (not parts.netloc or "/" not in fixed[len(parts.scheme) + 3 :]):
        raise fail(path, where, "placeholders may appear only in the path or query of the url, never in the host")
    if not parts.netloc:
        raise fail(path, where, f"url has no host: {url.source!r}")


def _body_templates(value: Any, path: Path, where: tuple[int, int], tpl: Any) -> Any:
    if isinstance(value, str):
        return tpl(value, position(value, where))
    if isinstance(value, PosDict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise fail(path, value.pos_of(key), f"JSON keys must be text, got {describe(key)}")
            result[key] = _body_templates(item, path, value.pos_of(key), tpl)
        return result
    if isinstance(value, PosList):
        return [_body_templates(item, path, position(value), tpl) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise fail(path, where, f"cannot send {describe(value)} as JSON")
