"""The demo page in a real browser: Playwright driving Debian's headless Chromium (never a downloaded
browser) against ``proxyai serve`` with its real worker. Screenshots of each step go to
``artifacts/page/``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_helper import serve

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "page"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    with serve(tmp_path_factory.mktemp("page"), RATE_LIMIT_RESULTS="600/minute") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: tuple[str, str, Path]) -> Iterator[Any]:
    # bypass_csp: the page forbids eval, which Playwright needs for wait_for_function; users keep the policy
    context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900}, bypass_csp=True)
    pg = context.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs
    pg.goto(server[0] + "/")
    yield pg
    context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, key: str) -> None:
    page.get_by_label("Your API key").fill(key)
    page.get_by_role("button", name="Use this key").click()
    page.wait_for_selector("#upload-section:not([hidden])")


def test_bad_key_is_explained(page: Any) -> None:
    sign_in_attempt = page.get_by_label("Your API key")
    sign_in_attempt.fill("pk_not_a_real_key")
    page.get_by_role("button", name="Use this key").click()
    status = page.locator("#key-status")
    status.filter(has_text="not valid").wait_for()
    assert page.locator("#upload-section").is_hidden()
    shot(page, "01-bad-key")


def test_a_text_file_is_refused_in_plain_words(page: Any, server: tuple[str, str, Path], tmp_path: Path) -> None:
    sign_in(page, server[1])
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a recording\n")
    page.set_input_files("#file-input", str(notes))
    page.get_by_role("button", name="Upload and transcribe").click()
    page.locator("#upload-status").filter(has_text="not audio").wait_for()
    shot(page, "02-not-audio")


def test_upload_listen_rename_export(page: Any, server: tuple[str, str, Path], shared_audio: Path) -> None:
    _, key, _ = server
    sign_in(page, key)
    shot(page, "03-signed-in")
    page.set_input_files("#file-input", str(shared_audio / "dialogue_2spk.wav"))
    page.get_by_role("button", name="Upload and transcribe").click()
    page.wait_for_selector("#job-section:not([hidden])")
    shot(page, "04-progress")
    page.wait_for_selector(".segment", timeout=180_000)
    shot(page, "05-transcript")

    segments = page.locator(".segment")
    assert segments.count() >= 4
    names = page.locator(".segment .speaker-name").all_inner_texts()
    assert set(names) == {"SPEAKER_00", "SPEAKER_01"}
    assert page.locator(".segment time").first.inner_text() == "00:00:00"
    # speakers have their own colours
    colours = {
        page.locator(".segment .speaker-name").nth(i).evaluate("e => getComputedStyle(e).color") for i in range(2)
    }
    assert len(colours) == 2

    # a play button plays exactly that segment's span
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=30_000)
    second = segments.nth(1)
    start, end = float(second.get_attribute("data-start")), float(second.get_attribute("data-end"))
    second.get_by_role("button").click()
    now = "document.getElementById('player').currentTime"
    inside = f"{now} > {start} + 0.2 && {now} < {end}"
    page.wait_for_function(inside, timeout=15_000)
    assert "playing" in (second.get_attribute("class") or "")
    shot(page, "06-playing")
    page.wait_for_function(
        f"document.getElementById('player').paused && document.getElementById('player').currentTime >= {end} - 0.3",
        timeout=15_000,
    )

    # rename: shown literally everywhere, saved, and still there after a reload
    field = page.get_by_label("Name for SPEAKER_00")
    field.fill(XSS)
    field.press("Enter")
    page.locator("#label-status").filter(has_text="is now").wait_for()
    shown = page.locator('.speaker-name[data-speaker="SPEAKER_00"]').all_inner_texts()
    assert shown and all(text == XSS for text in shown)
    assert page.locator("img").count() == 0 and not page.dialogs
    shot(page, "07-renamed")

    with page.expect_download() as download:
        page.get_by_role("button", name="SRT").click()
    srt = Path(download.value.path()).read_text()
    # SRT has no escape and players read its tags: the name's brackets are look-alikes, the rest as typed
    assert XSS.replace("<", "‹").replace(">", "›") + ":" in srt and "<" not in srt
    assert download.value.suggested_filename.endswith(".srt")

    page.reload()
    page.wait_for_selector("#history-section:not([hidden])")
    page.locator("#history tbody tr").first.get_by_role("button", name="Open").click()
    page.wait_for_selector(".segment", timeout=30_000)
    assert page.locator('.speaker-name[data-speaker="SPEAKER_00"]').first.inner_text() == XSS
    assert page.locator("img").count() == 0 and not page.dialogs
    shot(page, "08-after-reload")


def test_phone_width_is_readable(page: Any, server: tuple[str, str, Path]) -> None:
    page.set_viewport_size({"width": 375, "height": 800})
    sign_in(page, server[1])
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    shot(page, "09-phone")
