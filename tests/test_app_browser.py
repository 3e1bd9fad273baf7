"""scripts/app.py in a real browser: headless Chromium (Debian's package, driven by Playwright) loads the page, uploads
the demo reference and pose, clicks Generate and gets a video; nothing is fetched from outside the app's server.

The screenshot goes to the test's temporary folder; the README's docs/app.png is taken with
    DYNAMICTRL_APP_SCREENSHOT=docs/app.png .venv/bin/python -m pytest tests/test_app_browser.py
"""

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from app_server import free_port, load_app  # tests/: the app tests' shared helpers

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "dynamictrl" / "assets" / "demo"
CHROMIUM = Path(os.environ.get("DYNAMICTRL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytest.importorskip("gradio", reason="the app needs the [app] extra: pip install -e '.[app]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the [app] extra)")
if not CHROMIUM.is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium when run as root "
        "(or apt-get install chromium; DYNAMICTRL_CHROMIUM=PATH for another build)",
        allow_module_level=True,
    )


@pytest.fixture
def server():
    app = load_app("app_in_browser")
    args = app.build_parser().parse_args(["--port", str(free_port())])
    page = app.build_app(args)
    _, url, _ = app.launch(page, args, prevent_thread_lock=True, quiet=True)
    yield url
    page.close()
    page.animator.close()


def test_page_uploads_the_demo_generates_a_video_and_fetches_nothing_outside(server, tmp_path):
    outside = []  # requests to any host but the app's: CDNs, fonts, analytics

    def only_the_app(route):
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user-data dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            browser.route("**/*", only_the_app)
            page = browser.new_page()
            page.goto(server, wait_until="domcontentloaded")
            page.locator("#reference input[type=file]").set_input_files(DEMO / "reference.png")
            page.locator("#pose input[type=file]").set_input_files(DEMO / "pose.mp4")
            page.locator("#reference img").first.wait_for(timeout=15_000)
            page.locator('#pose a[download="pose.mp4"]').wait_for(timeout=15_000)  # uploaded
            for field, value in (("#steps", "2"), ("#max_frames", "9")):  # one clip, two steps: seconds on a CPU
                number = page.locator(f"{field} input[type=number]")
                number.fill(value)
                number.press("Enter")
            page.locator("#generate").click()
            page.locator("#result video[src]").wait_for(timeout=45_000)
            command = re.compile(r"^dynamictrl-infer --ref \S+reference\.png --pose \S+pose\.mp4 ")
            sync_api.expect(page.locator("#command textarea")).to_have_value(command, timeout=5_000)
            shot = page.screenshot(path=tmp_path / "app.png", full_page=True)
        finally:
            browser.close()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("DYNAMICTRL_APP_SCREENSHOT"):
        shutil.copyfile(tmp_path / "app.png", os.environ["DYNAMICTRL_APP_SCREENSHOT"])
    assert outside == [], f"the page fetched from outside the app: {outside}"
