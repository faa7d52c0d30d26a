"""End to end: `thgs view` on a smoke-trained toy avatar, opened in headless chromium over the DevTools protocol.

Checks what the browser shows: a non-blank render, which changes after dragging an expression slider with
the mouse; and that pressing Play starts the page's audio element. Skips when chromium or viser is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.viewer.cdp import Browser, find_chromium, wait_for

pytest.importorskip("viser")
pytest.importorskip("websockets.sync.client")

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

W, H = 1280, 800
# The scene area between the notification corner (top left) and the control panel (right).
X0, X1 = 330, 930


def scene(img: np.ndarray) -> np.ndarray:
    return img[:, X0:X1].astype(np.int16)


def drawn_fraction(img: np.ndarray) -> float:
    """Share of scene pixels that are not (near) white: the avatar on the subject's white background."""
    return float((np.abs(scene(img) - 255).max(-1) > 40).mean())


def track_rect(browser: Browser, label: str) -> list[float]:
    """Bounding box [x, y, w, h] of the slider track in the GUI row labelled ``label``."""
    return browser.eval(
        "(() => {const lab = [...document.querySelectorAll('label')].find(e => e.textContent.trim() === "
        + repr(label) + ");"
        "let row = lab; while (row && !row.querySelector('.mantine-Slider-track')) row = row.parentElement;"
        "const r = row.querySelector('.mantine-Slider-track').getBoundingClientRect();"
        "return [r.x, r.y, r.width, r.height];})()")


def button_center(browser: Browser, text: str) -> list[float]:
    return browser.eval(
        "(() => {const b = [...document.querySelectorAll('button')].find(e => e.textContent.trim() === "
        + repr(text) + "); const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];})()")


def stable_screenshot(browser: Browser, timeout: float = 20.0):
    """A screenshot taken once two consecutive ones agree (the streamed image has arrived and settled)."""
    last = [browser.screenshot()]

    def settled():
        time.sleep(0.3)
        img = browser.screenshot()
        same = np.array_equal(scene(img), scene(last[0]))
        last[0] = img
        return img if same and drawn_fraction(img) > 0.02 else None

    return wait_for(settled, timeout, interval=0.0)


@pytest.fixture
def viewer(toy_run):
    env = dict(os.environ, THGS_DEVICE="cpu")
    proc = subprocess.Popen([sys.executable, "-m", "thgs", "view", str(toy_run), "--port", "0", "--max-height", "192"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = None
    lines = []
    deadline = time.time() + 60
    while url is None and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"thgs view: .* at (http://\S+)", line)
        if m:
            url = m.group(1)
    if url is None:
        proc.kill()
        pytest.fail("the viewer did not start:\n" + "".join(lines))
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_browser_sees_render_and_expression_slider_changes_it(viewer):
    browser = Browser(CHROMIUM, W, H)
    try:
        browser.navigate(viewer)
        before = stable_screenshot(browser)
        assert before is not None, "the browser never showed a rendered avatar"
        assert drawn_fraction(before) > 0.05

        x, y, w, h = track_rect(browser, "jaw_open")
        browser.drag(x + 4, y + h / 2, x + w + 20, y + h / 2)  # drag the slider past its maximum
        assert wait_for(lambda: browser.eval(
            "[...document.querySelectorAll('[role=slider]')].some(e => e.getAttribute('aria-valuenow') === '2')"), 10)

        def changed():
            img = browser.screenshot()
            diff = (np.abs(scene(img) - scene(before)).max(-1) > 30).sum()
            return img if diff > 200 else None

        after = wait_for(changed, 20)
        assert after is not None, "the streamed image did not change after moving the expression slider"
        assert drawn_fraction(after) > 0.05

        # Play starts the page's audio element (the click is the user gesture browsers ask for).
        assert browser.eval("!!document.getElementById('thgs-audio')")
        bx, by = button_center(browser, "Play")
        browser.click(bx, by)
        playing = wait_for(lambda: browser.eval(
            "(() => {const a = document.getElementById('thgs-audio'); return a && !a.paused;})()"), 10)
        assert playing, "the audio element did not start after pressing Play"
        assert wait_for(lambda: browser.eval(
            "[...document.querySelectorAll('button')].some(e => e.textContent.trim() === 'Pause')"), 5)
    finally:
        browser.close()
