"""A scripted model behind a real OpenAI-compatible HTTP endpoint on 127.0.0.1 (test aid).

Tests point kscout at it with `--model openai/<name> --api-base http://127.0.0.1:PORT/v1`, so every
request goes through litellm's real HTTP path, retries and error mapping; only the model's answers
are scripted. A `respond(request) -> Reply` function decides each answer (it sees the messages,
so it can answer per prompt) and may return rate limits, server errors, slow answers or truncation.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    content: str = ""
    status: int = 200                 # 429 rate limit, 500/503 server error, 401 auth, ...
    delay_s: float = 0.0              # sleep before answering (client timeouts)
    finish_reason: str = "stop"       # "length" = truncated by max tokens
    retry_after: float | None = None  # Retry-After header on 429/503


@dataclass
class Request:
    model: str
    messages: list[dict]
    body: dict

    @property
    def prompt(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.messages)


@dataclass
class ScriptedServer:
    respond: Callable[[Request], Reply]
    requests: list[Request] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:   # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                req = Request(model=body.get("model", ""), messages=body.get("messages", []), body=body)
                server.requests.append(req)
                reply = server.respond(req)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.status != 200:
                    payload = {"error": {"message": f"scripted error {reply.status}", "type": "scripted",
                                         "code": str(reply.status)}}
                    self._send(reply.status, payload, reply.retry_after)
                    return
                tokens_in = max(1, len(req.prompt) // 4)
                tokens_out = max(1, len(reply.content) // 4)
                self._send(200, {
                    "id": f"scripted-{len(server.requests)}", "object": "chat.completion",
                    "created": int(time.time()), "model": req.model,
                    "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                                 "message": {"role": "assistant", "content": reply.content}}],
                    "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                              "total_tokens": tokens_in + tokens_out},
                })

            def _send(self, status: int, payload: dict, retry_after: float | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    if retry_after is not None:
                        self.send_header("Retry-After", f"{retry_after:g}")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):   # the client timed out and left
                    pass

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
