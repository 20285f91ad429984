"""The learner's page in Firefox, driven over WebDriver BiDi (no geckodriver needed).

Playwright cannot drive Debian's Firefox here, and Firefox's fake camera is a
synthetic pattern, not a face: this test shows that the page connects over WebRTC
to aiortc, that the data channel works both ways, and that frames arrive when the
server asks for them (the checks see the pattern: `no_face`, not `check_missed`).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable
from tests.supervisor.conftest import Service, free_port
from tests.supervisor.online.test_learner_browser import _api_session, live_service  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIREFOX_PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # Firefox leaves out loopback ICE candidates unless told; the service is on 127.0.0.1.
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "app.update.enabled": False,
}


@pytest.fixture
def firefox(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("firefox-esr") or shutil.which("firefox")
    if exe is None:
        unavailable("Debian's firefox-esr is not installed (apt-get install firefox-esr)")
    assert exe is not None
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "user.js").write_text(
        "\n".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in FIREFOX_PREFS.items())
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--headless",
            f"--remote-debugging-port={port}",
            "--profile",
            str(profile),
            "--no-remote",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"ws://127.0.0.1:{port}/session"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Bidi:
    """The few WebDriver BiDi commands the test needs."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        my = self.next_id
        await self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == my:
                if msg.get("type") == "error":
                    raise RuntimeError(f"{method}: {msg.get('error')}: {msg.get('message')}")
                result: dict[str, Any] = msg["result"]
                return result

    async def value(self, context: str, expression: str) -> Any:
        r = await self.call(
            "script.evaluate",
            {"expression": expression, "target": {"context": context}, "awaitPromise": False},
        )
        return r["result"].get("value")


async def _connect(url: str) -> Any:
    import websockets

    deadline = time.monotonic() + 30
    while True:
        try:
            return await websockets.connect(url, max_size=None)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


def test_firefox_page_streams_over_webrtc_on_request(
    live_service: Service,  # noqa: F811
    firefox: str,
) -> None:
    live_service.forget_faces()
    w, sid = _api_session(live_service)

    def scheduled_checks() -> list[dict[str, Any]]:
        r = live_service.call("GET", f"/api/v1/sessions/{sid}/events", w.learner)
        return [e for e in r.json() if e["kind"] in ("check", "check_missed") and e["seq"] > 2]

    async def drive() -> str:
        ws = await _connect(firefox)
        try:
            b = Bidi(ws)
            await b.call("session.new", {"capabilities": {}})
            context = (await b.call("browsingContext.getTree", {}))["contexts"][0]["context"]
            url = f"{live_service.url}/learn#token={w.learner}&session={sid}"
            await b.call(
                "browsingContext.navigate", {"context": context, "url": url, "wait": "complete"}
            )
            deadline = time.monotonic() + 40
            mode = None
            while time.monotonic() < deadline:
                mode = await b.value(context, "document.body.dataset.mode || ''")
                if mode and await asyncio.to_thread(scheduled_checks):
                    break
                await asyncio.sleep(1)
            return str(mode)
        finally:
            await ws.close()

    mode = asyncio.run(drive())
    assert mode == "webrtc"
    found = scheduled_checks()
    assert found, "no scheduled check was recorded"
    first = found[0]
    # Frames came over WebRTC when asked: Firefox's synthetic camera shows no face.
    assert first["kind"] == "check"
    assert first["payload"]["verdict"] == "no_face" and first["payload"]["faces"] == 0
