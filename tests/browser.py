"""A minimal Chrome DevTools Protocol client for the website test (no extra dependency:
``websocket-client`` comes with the Jupyter stack). It starts headless Chromium on a page,
evaluates JavaScript in it, sends key presses and collects console errors."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket

FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,2000",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self):
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("Chromium is not installed")
        self.profile = tempfile.mkdtemp(prefix="dk-chromium-")
        self.proc = subprocess.Popen(
            [exe, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = pathlib.Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not start")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.console_errors: list[str] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _record(self, message):
        method = message.get("method")
        if method == "Runtime.exceptionThrown":
            details = message["params"]["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self.console_errors.append(text)
        elif method == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in message["params"]["args"]))
        elif method == "Log.entryAdded" and message["params"]["entry"]["level"] == "error":
            entry = message["params"]["entry"]
            self.console_errors.append(f"{entry.get('text', '')} {entry.get('url', '')}")

    def call(self, method: str, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._record(message)

    def drain(self, seconds: float):
        end = time.time() + seconds
        self.ws.settimeout(0.2)
        try:
            while time.time() < end:
                try:
                    self._record(json.loads(self.ws.recv()))
                except websocket.WebSocketTimeoutException:
                    pass
        finally:
            self.ws.settimeout(30)

    def open(self, url: str, settle: float = 3.0):
        self.console_errors = []
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout=30)
        self.drain(settle)

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.eval(f"Boolean({expression})"):
                return True
            self.drain(0.2)
        return False

    def press(self, key: str, code: str, key_code: int, times: int = 1):
        for _ in range(times):
            for kind in ("keyDown", "keyUp"):
                self.call("Input.dispatchKeyEvent", type=kind, key=key, code=code, windowsVirtualKeyCode=key_code,
                          nativeVirtualKeyCode=key_code)

    def set_window(self, width: int, height: int = 1000):
        """Lay the page out as in a browser window of this size (CSS pixels, scale 1)."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self, path, full_page: bool = False, max_height: int = 16000):
        """Save a PNG of the window, or of the whole page (up to max_height CSS pixels): the
        window is made as tall as the page for the shot, so sticky parts stay in place."""
        import base64

        if full_page:
            metrics = self.call("Page.getLayoutMetrics")
            width = metrics["cssLayoutViewport"]["clientWidth"]
            height = metrics["cssLayoutViewport"]["clientHeight"]
            full = min(int(metrics["cssContentSize"]["height"]), max_height)
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=full, deviceScaleFactor=1, mobile=False)
            self.drain(0.3)
        try:
            data = self.call("Page.captureScreenshot", format="png")["data"]
        finally:
            if full_page:
                self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                          mobile=False)
        pathlib.Path(path).write_bytes(base64.b64decode(data))

    def close(self):
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


# Console messages known to be harmless: sphinx-thebe's double declaration; the widget
# output manager calling the MathJax 2 API on MathJax 3; the theme resetting an empty
# stored colour mode on a fresh browser profile; and the widget manager's FontAwesome
# files (only used by widget icons, which the book does not use), requested relative to
# the page.
HARMLESS = ("THEBE_JS_URL", "reading 'Queue'", "favicon.ico", "Got invalid theme mode: . Resetting to auto.",
            "@jupyter-widgets/html-manager/dist/")


def errors_that_matter(errors):
    return [e for e in errors if not any(h in e for h in HARMLESS)]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_requires_browser() -> bool:
    return os.environ.get("DISTILLKIT_REQUIRE_BROWSER") == "1"
