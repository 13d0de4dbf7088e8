"""A recording HTTP server for tests: answers API routes from a table and keeps every request.

Real clients (kfp.Client, the Kubeflow SDK's TrainerClient over the kubernetes
client) talk to it on 127.0.0.1, so the tests check what they would send to a
cluster without one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# (method, path) -> (status, JSON body) or a function of the request giving them.
Routes = dict[tuple[str, str], tuple[int, dict] | Callable[["Request"], tuple[int, dict]]]


@dataclass
class Request:
    method: str
    path: str
    query: dict
    body: dict | None


@dataclass
class FakeApi:
    routes: Routes
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def sent(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]


def serve(routes: Routes) -> tuple[FakeApi, ThreadingHTTPServer]:
    api = FakeApi(routes)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(self.command, url.path, parse_qs(url.query), json.loads(raw) if raw else None)
            api.requests.append(request)
            route = api.routes.get((self.command, url.path))
            status, body = (
                (404, {"kind": "Status", "code": 404, "message": "not found"})
                if route is None
                else (route(request) if callable(route) else route)
            )
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PATCH = _answer

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return api, server
