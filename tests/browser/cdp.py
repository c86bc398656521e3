"""A minimal Chrome DevTools Protocol client for Debian's headless `chromium`, over
`--remote-debugging-pipe` (fd 3: commands in, fd 4: replies and events out, each a
JSON message ended by a NUL byte). No websocket library and no browser download: only
the system chromium (`apt-get install chromium`; scripts/setup-test-deps.sh --browser).

    with Browser() as b:
        page = b.new_page("http://127.0.0.1:9644/")
        page.wait_for("document.querySelector('#overview')")
        page.screenshot(path)
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time


def find_chromium() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    pass


class Browser:
    def __init__(self, width: int = 1280, height: int = 900):
        exe = find_chromium()
        if exe is None:
            raise CdpError("no chromium: run scripts/setup-test-deps.sh --browser")
        self.profile = tempfile.mkdtemp(prefix="brook-chromium-")
        # Our end: write commands to cmd_w (the browser reads fd 3), read replies
        # from out_r (the browser writes fd 4).
        cmd_r, self.cmd_w = os.pipe()
        self.out_r, out_w = os.pipe()

        def child_fds():
            os.dup2(cmd_r, 3)
            os.dup2(out_w, 4)

        args = [
            exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
            "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--metrics-recording-only", "--mute-audio",
            f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
            "about:blank",
        ]
        # close_fds would close the dup2'd 3 and 4 after preexec_fn; Python's own
        # descriptors are close-on-exec anyway (PEP 446).
        self.proc = subprocess.Popen(args, preexec_fn=child_fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(out_w)
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    # -- transport -----------------------------------------------------------
    def _read_message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buf:
            if time.monotonic() > deadline:
                raise CdpError("no message from chromium in time")
            ready, _, _ = select.select([self.out_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                continue
            chunk = os.read(self.out_r, 1 << 20)
            if not chunk:
                raise CdpError("chromium closed the pipe (did it crash?)")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(max(0.1, deadline - time.monotonic()))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
            if len(self.events) > 10_000:
                del self.events[:5_000]

    # -- pages ---------------------------------------------------------------
    def new_page(self, url: str) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.goto(url)
        return page

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except (CdpError, OSError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for fd in (self.cmd_w, self.out_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        return self.browser.send(method, params, self.session, timeout)

    def close(self):
        """Closes the page's tab (its timers stop with it)."""
        try:
            self.send("Page.close", timeout=5)
        except CdpError:
            pass

    def goto(self, url: str):
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def eval(self, expression: str):
        """Evaluates JavaScript in the page (awaiting a promise) and returns its value."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise CdpError(f"{expression}: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15, what: str | None = None):
        """Polls `expression` until it is truthy (as JavaScript sees it); returns its
        value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.eval(expression)
            except CdpError as e:
                last = e
            # JavaScript truthiness: an element comes back as {} (truthy there).
            if not isinstance(last, CdpError) and last not in (None, False, "", 0):
                return last
            time.sleep(0.1)
        raise CdpError(f"timed out waiting for {what or expression} (last: {last!r})")

    def type_into(self, selector: str, text: str):
        """Focuses a field and types into it, as a user would."""
        self.eval(f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
                  f" el.focus(); el.value = ''; }})()")
        self.send("Input.insertText", {"text": text})

    def click(self, selector: str):
        """Clicks the centre of the element matching `selector` with the mouse."""
        box = self.wait_for(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)}); if (!el) return null;"
            f" el.scrollIntoView({{block: 'center'}}); const r = el.getBoundingClientRect();"
            f" return [r.x + r.width / 2, r.y + r.height / 2]; }})()", what=f"element {selector}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def text(self, selector: str) -> str:
        return self.eval(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
