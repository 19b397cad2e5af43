"""The OpenAI-compatible client against a local HTTP server that speaks the chat-completions protocol."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lattice.llm.openai_compat import LLMError, OpenAICompatClient


class _Endpoint(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        _Endpoint.seen.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"model crashed")
            return
        reply = {"choices": [{"message": {"role": "assistant", "content": f"echo: {body['messages'][-1]['content']}"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_chat_round_trip(endpoint):
    client = OpenAICompatClient(base_url=endpoint, api_key="k-123", model="tiny")
    assert client.chat([{"role": "user", "content": "hi"}], temperature=0) == "echo: hi"
    request = _Endpoint.seen[-1]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer k-123"
    assert request["body"] == {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def test_errors_are_typed(endpoint):
    with pytest.raises(LLMError, match="answered 500: model crashed"):
        OpenAICompatClient(base_url=endpoint, model="broken").chat([{"role": "user", "content": "x"}])
    with pytest.raises(LLMError, match="cannot reach"):
        OpenAICompatClient(base_url="http://127.0.0.1:9/v1", timeout=2).chat([{"role": "user", "content": "x"}])
