"""Headless Chromium (Debian's package, installed by `make setup`) driven over the DevTools protocol.

``--remote-debugging-pipe`` needs no network port and no client library: the browser reads
commands on its fd 3 and writes answers and events on its fd 4, each a JSON message ended by NUL.
Enough of the protocol for the page's tests: navigate, evaluate, press keys, screenshots, and the
console (CSP violations and script errors) collected as it happens.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Windows virtual key codes for the keys the tests press.
# How long the browser may take to answer its first command.
STARTUP_SECONDS = 120

_KEYS = {"Tab": 9, "Enter": 13, " ": 32, "ArrowDown": 40, "ArrowUp": 38, "ArrowRight": 39, "ArrowLeft": 37}


class Browser:
    def __init__(self, profile: Path, width: int = 1280, height: int = 900) -> None:
        if CHROMIUM is None:
            raise RuntimeError("chromium is not installed: `make setup` installs Debian's chromium package")
        to_browser_read, self._write = os.pipe()
        self._read, from_browser_write = os.pipe()
        # Above 4, so that wiring them onto fds 3 and 4 in the child never closes one of them.
        to_browser_read, from_browser_write = (self._high(fd) for fd in (to_browser_read, from_browser_write))

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                 f"--window-size={width},{height}", "about:blank"]
        # The shell puts the pipe ends on fds 3 and 4, where the browser expects them.
        wiring = f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write} {to_browser_read}<&- {from_browser_write}>&-'
        profile.mkdir(parents=True, exist_ok=True)
        self._log = profile.parent / "chromium.log"  # the browser's own output, quoted when it does not answer
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(["bash", "-c", wiring, CHROMIUM, *flags], pass_fds=(to_browser_read, from_browser_write),
                                            stdout=log, stderr=log)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._ready = threading.Condition()
        self._closed = False  # the browser closed its end of the pipe (it exited)
        self.console: list[str] = []  # console messages, script exceptions and CSP reports, as text
        threading.Thread(target=self._listen, daemon=True).start()
        # A cold start (fresh profile, cold disk cache, a busy CI machine) has taken over 30 s; later calls are quick.
        try:
            target = next(t for t in self.call("Target.getTargets", timeout=STARTUP_SECONDS)["targetInfos"] if t["type"] == "page")
        except BaseException:
            self.process.kill()
            raise
        self.session = self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.resize(width, height)

    @staticmethod
    def _high(fd: int) -> int:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return moved

    def _listen(self) -> None:
        buffer = b""
        while chunk := os.read(self._read, 1 << 16):
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._ready:
                        self._answers[message["id"]] = message
                        self._ready.notify_all()
                elif message.get("method") == "Runtime.consoleAPICalled":
                    self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in message["params"]["args"]))
                elif message.get("method") == "Runtime.exceptionThrown":
                    self.console.append(f"exception: {message['params']['exceptionDetails'].get('exception', {}).get('description', '')}")
                elif message.get("method") == "Log.entryAdded":
                    self.console.append(f"{message['params']['entry'].get('source')}: {message['params']['entry'].get('text')}")
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def call(self, method: str, session: bool = False, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        number = self._next_id
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._ready:
            while number not in self._answers:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    why = f"the browser exited ({self.process.poll()})" if self._closed else f"no answer in {timeout} s"
                    raise TimeoutError(f"{method}: {why}; its output:\n{self._output()}")
                self._ready.wait(left)
            answer = self._answers.pop(number)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def _output(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(none)"

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height, deviceScaleFactor=1, mobile=width < 600)

    def goto(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)

    def js(self, expression: str) -> Any:
        """The value of ``expression`` in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None  # the page is between documents
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} s: {expression}\nconsole: {self.console}")
            time.sleep(0.1)

    def press(self, key: str, times: int = 1, shift: bool = False) -> None:
        """A key as the keyboard gives it (focus moves, buttons and radios respond as to a person)."""
        code = _KEYS[key]
        text = {"Enter": "\r", " ": " "}.get(key, "")
        for _ in range(times):
            common = {"key": key, "windowsVirtualKeyCode": code, "modifiers": 8 if shift else 0}
            self.call("Input.dispatchKeyEvent", session=True, type="keyDown" if text else "rawKeyDown", text=text, **common)
            self.call("Input.dispatchKeyEvent", session=True, type="keyUp", **common)

    def type_text(self, text: str) -> None:
        self.call("Input.insertText", session=True, text=text)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._write)
