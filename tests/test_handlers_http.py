"""`http:` handlers against a real local http.server on 127.0.0.1."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from assistant.handlers import Dispatcher
from assistant.intents import IntentMatch, load_commands


class _Recorder(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def log_message(self, *args) -> None:  # keep test output quiet
        return None

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.requests.append({"method": self.command, "path": self.path, "body": body, "headers": dict(self.headers)})
        if self.path.startswith("/fail"):
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"internal trouble")
            return
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/text"):
            payload = b"plain words"
        else:
            payload = json.dumps({"state": "on", "attributes": {"brightness": 40}, "items": ["a", "b"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # must be ignored: requests go direct


@pytest.fixture
def server():
    _Recorder.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def dispatcher_for(tmp_path: Path, port: int) -> Dispatcher:
    (tmp_path / "commands.yaml").write_text(
        textwrap.dedent(
            f"""
            lists:
              name: {{wildcard: true}}
              level: {{range: {{from: 0, to: 100}}}}
            intents:
              Post:
                sentences: ["post {{name}} at {{level}}"]
                handler:
                  http:
                    method: POST
                    url: "http://127.0.0.1:{port}/api/{{name}}?q={{name}}"
                    json: {{entity: "light.{{name}}", level: "{{level}}", raw: "{{name}}", fixed: [1, true, null]}}
                    headers: {{X-Name: "{{name}}"}}
                reply: "It is {{response.state}} at {{response.attributes.brightness}}, first {{response.items.0}} ({{status}})."
              Get:
                sentences: ["get"]
                handler: {{http: {{url: "http://127.0.0.1:{port}/text"}}}}
                reply: "Said: {{response}}"
              Fail:
                sentences: ["fail"]
                handler: {{http: {{url: "http://127.0.0.1:{port}/fail"}}, error_reply: "Home Assistant said no."}}
              Slow:
                sentences: ["slow"]
                handler: {{http: {{url: "http://127.0.0.1:{port}/slow", timeout: 0.2}}}}
              Nobody:
                sentences: ["nobody"]
                handler: {{http: {{url: "http://127.0.0.1:9/nothing", timeout: 1}}}}
              Missing:
                sentences: ["missing"]
                handler: {{http: {{url: "http://127.0.0.1:{port}/x"}}}}
                reply: "{{response.nope}}"
            """
        )
    )
    return Dispatcher(load_commands(tmp_path / "commands.yaml"), timer_thread=False)


def test_post_with_json_body_and_dotted_response(tmp_path: Path, server: int) -> None:
    d = dispatcher_for(tmp_path, server)
    name = 'kitchen/../x?&"}'
    outcome = d.handle(IntentMatch("Post", {"name": name, "level": 40}, ""))
    assert outcome.ok, outcome.error
    assert outcome.reply == "It is on at 40, first a (200)."
    (request,) = _Recorder.requests
    assert request["method"] == "POST"
    # Slot values are URL-quoted: no path traversal, no extra query parameters.
    assert request["path"] == "/api/kitchen%2F..%2Fx%3F%26%22%7D?q=kitchen%2F..%2Fx%3F%26%22%7D"
    body = json.loads(request["body"])
    # Values are JSON values: a number stays a number, text is never spliced into JSON syntax.
    assert body == {"entity": f"light.{name}", "level": 40, "raw": name, "fixed": [1, True, None]}
    assert request["headers"]["X-Name"] == name
    assert request["headers"]["Content-Type"] == "application/json"


def test_non_json_response_is_text(tmp_path: Path, server: int) -> None:
    outcome = dispatcher_for(tmp_path, server).handle(IntentMatch("Get", {}, ""))
    assert outcome.ok and outcome.reply == "Said: plain words"


def test_http_error_status_gives_the_error_reply(tmp_path: Path, server: int, caplog: pytest.LogCaptureFixture) -> None:
    outcome = dispatcher_for(tmp_path, server).handle(IntentMatch("Fail", {}, ""))
    assert not outcome.ok and "HTTP 500" in outcome.error and outcome.reply == "Home Assistant said no."
    assert "internal trouble" in caplog.text


def test_timeout(tmp_path: Path, server: int) -> None:
    started = time.monotonic()
    outcome = dispatcher_for(tmp_path, server).handle(IntentMatch("Slow", {}, ""))
    assert time.monotonic() - started < 1.0
    assert not outcome.ok and "timed out" in outcome.error


def test_nothing_listening_is_an_error_reply_not_a_crash(tmp_path: Path, server: int) -> None:
    outcome = dispatcher_for(tmp_path, server).handle(IntentMatch("Nobody", {}, ""))
    assert not outcome.ok and outcome.error.startswith("cannot reach http://127.0.0.1:9/nothing")
    assert outcome.reply == "Sorry, that failed."


def test_missing_response_field_is_an_error_reply(tmp_path: Path, server: int) -> None:
    outcome = dispatcher_for(tmp_path, server).handle(IntentMatch("Missing", {}, ""))
    assert not outcome.ok and outcome.error == "no value for {response.nope}"


def test_header_values_cannot_smuggle_line_breaks(tmp_path: Path, server: int) -> None:
    outcome = dispatcher_for(tmp_path, server).handle(IntentMatch("Post", {"name": "a\r\nX-Evil: 1", "level": 1}, ""))
    assert not outcome.ok and "line break" in outcome.error
    assert _Recorder.requests == []


def test_shipped_http_example_is_harmless_when_nothing_listens(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    d = Dispatcher(load_commands(root / "commands.yaml"), timer_thread=False)
    outcome = d.handle(IntentMatch("SceneActivate", {"scene": "movie"}, ""))
    # Either nothing listens on 8123 (error reply) or a real Home Assistant refuses the dummy token.
    assert not outcome.ok and outcome.reply == "Sorry, I couldn't reach Home Assistant."
