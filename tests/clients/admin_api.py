"""A small client of Brook's admin JSON API (`/api/v1`), for the tests.

    api = AdminApi(brook.admin_url)
    status, body = api.call("POST", "/topics", {"name": "t"})
    api.ok("GET", "/cluster")            # asserts a 2xx and returns the body
    api.error("POST", "/topics", {...})  # asserts a 4xx/5xx and returns the error name
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


class AdminApi:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/") + "/api/v1"

    def call(self, method: str, path: str, body=None, headers: dict | None = None,
             raw: bytes | None = None, action_header: bool = True,
             timeout: float = 30) -> tuple[int, dict]:
        hdrs = {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if method != "GET" and action_header:
            hdrs["X-Brook-Request"] = "1"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"error": f"HTTP_{e.code}", "message": text.decode(errors="replace")}

    def ok(self, method: str, path: str, body=None, **kw) -> dict:
        status, out = self.call(method, path, body, **kw)
        assert 200 <= status < 300, f"{method} {path}: {status} {out}"
        return out

    def error(self, method: str, path: str, body=None, status: int | None = None, **kw) -> str:
        got, out = self.call(method, path, body, **kw)
        assert got >= 400, f"{method} {path} should fail, got {got} {out}"
        if status is not None:
            assert got == status, f"{method} {path}: {got} {out}, expected {status}"
        assert "error" in out and "message" in out, out
        return out["error"]

    def messages(self, topic: str, **params) -> dict:
        q = urllib.parse.urlencode(params)
        return self.ok("GET", f"/topics/{urllib.parse.quote(topic)}/messages?{q}")

    def group(self, group: str) -> dict:
        return self.ok("GET", f"/groups/{urllib.parse.quote(group)}")
