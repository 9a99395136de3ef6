"""Build the website from the stored notebook outputs, serve it on 127.0.0.1 and check it
in headless Chromium: math is typeset, figures load, a widget responds to the keyboard with
no kernel, search works offline, and no page logs a console error that matters.

``test_reader_view`` checks what a reader sees on every page of the book (tests/reader_view.js):
in a 1400-px window no raw TeX, nothing wider than the text column unless it sits in its own
scroll box, every image loaded and shown at least at MIN_IMAGE_RATIO of its natural width,
every exercise reference resolving to that exercise, exactly one search box; in a 420-px
window nothing wider than the screen outside a scroll box. It keeps a screenshot of every page
(1400 px, whole page) in _build/screenshots/ for review.

Skips with a clear reason when Chromium is absent; CI sets DISTILLKIT_REQUIRE_BROWSER=1,
which turns the skip into a failure."""

import functools
import http.server
import pathlib
import subprocess
import sys
import threading

import pytest
import yaml
from browser import Browser, chromium_path, env_requires_browser, errors_that_matter, free_port

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.browser
SCREENSHOTS = ROOT / "_build" / "screenshots"
READER_VIEW_JS = (pathlib.Path(__file__).with_name("reader_view.js")).read_text(encoding="utf-8")
# Output figures are drawn with 12-pt fonts at 100 dpi (distillkit.plots.style); shown at no
# less than 0.75 of their natural width, their text stays at 9 pt or more. The output column
# is about 772 px wide at a 1400-px window, so a figure may be up to about 1030 px wide.
MIN_IMAGE_RATIO = 0.75


def book_pages() -> list[str]:
    """Every page of the book, in the order of _toc.yml (its document names, no suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    found = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                found.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", [{"chapters": toc.get("chapters")}]):
        walk(part.get("chapters"))
    return found


# Pages whose stored notebook outputs only comply once their chapter is re-executed (the
# checks of reader_view.js that still fail there, with the reason). Strict: a page listed
# here that passes such a check fails the test until its entry is removed, and a page
# failing a check not listed for it fails as usual.
PENDING_PAGES: dict[str, dict[str, str]] = {
    # empty: every chapter's stored figures fit (the decision-boundary and robust chapters were
    # re-executed with figures within 10 in, 725ca98 and 24bd3c9)
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if chromium_path() is None:
        if env_requires_browser():
            pytest.fail("Chromium is required (DISTILLKIT_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Chromium is not installed: apt-get install chromium (mandatory in CI)")
    out = tmp_path_factory.mktemp("site")
    subprocess.run(["bash", str(ROOT / "tools" / "vendor_js.sh")], check=True, cwd=ROOT)
    jb = pathlib.Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run(
        [str(jb), "build", "--all", "-W", "--keep-going", "--path-output", str(out), str(ROOT)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    html = out / "_build" / "html"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    browser = Browser()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", html, browser
    finally:
        browser.close()
        server.shutdown()


def pages(html: pathlib.Path):
    return sorted(p.relative_to(html).as_posix() for p in (html / "chapters").rglob("*.html"))


def test_every_page_loads_without_console_errors(site):
    base, html, browser = site
    found = pages(html)
    assert len(found) >= 4
    bad = {}
    for page in found:
        browser.open(f"{base}/{page}", settle=1.5)
        errors = errors_that_matter(browser.console_errors)
        if errors:
            bad[page] = errors[:3]
    assert not bad, "\n".join(f"{p}: {e}" for p, e in bad.items())


def test_math_is_typeset_offline(site):
    base, html, browser = site
    browser.open(f"{base}/chapters/00_front/notation.html")
    assert browser.wait_for("document.querySelectorAll('mjx-container').length > 10", timeout=30)
    # MathJax was served by the site itself, not a CDN
    src = browser.eval("Array.from(document.scripts).map(s => s.src).filter(s => s.includes('mathjax')).join(' ')")
    assert src.startswith(base), src


def test_figures_load(site):
    base, html, browser = site
    browser.open(f"{base}/chapters/99_back/template.html")
    assert browser.wait_for(
        "Array.from(document.querySelectorAll('img')).filter(i => i.complete && i.naturalWidth > 0).length >= 2", timeout=20
    )
    broken = browser.eval("Array.from(document.querySelectorAll('img')).filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)")
    assert broken == []


def test_widget_responds_without_kernel(site):
    base, html, browser = site
    browser.open(f"{base}/chapters/99_back/template.html", settle=3)
    assert browser.wait_for("document.querySelector('.widget-slider .noUi-handle, .widget-slider input') !== null", timeout=30)
    shown = "Array.from(document.querySelectorAll('.widget-html-content b')).filter(b => b.offsetParent !== null).map(b => b.textContent).join('|')"
    before = browser.eval(shown)
    assert before == "budget 2", before
    browser.eval("document.querySelector('.widget-slider .noUi-handle').focus()")
    browser.press("ArrowRight", "ArrowRight", 39, times=2)
    browser.drain(1.0)
    assert browser.eval(shown) == "budget 20"
    visible_images = browser.eval(
        "Array.from(document.querySelectorAll('.widget-image')).filter(i => i.offsetParent !== null).length")
    assert visible_images == 1


def test_search_works_offline(site):
    base, html, browser = site
    browser.open(f"{base}/search.html?q=herding", settle=3)
    assert browser.wait_for("document.querySelectorAll('#search-results li, ul.search li').length > 0", timeout=30)


def reader_view(browser, url: str, shot: pathlib.Path | None = None) -> dict[str, list[str]]:
    """Run tests/reader_view.js on one page at 1400 px and at 420 px (findings by check)."""
    browser.set_window(1400, 1000)
    browser.open(url, settle=1.0)
    browser.eval("(window.MathJax && MathJax.startup && MathJax.startup.promise)"
                 " ? MathJax.startup.promise.then(() => true) : true")
    # open every dropdown (solutions, collapsed inputs) so that what they hold is checked too
    browser.eval("document.querySelectorAll('details').forEach(d => d.open = true);"
                 "document.querySelectorAll('button.toggle-button').forEach(b => b.click()); true")
    browser.drain(0.5)
    browser.eval(READER_VIEW_JS)
    found = browser.eval(f"window.__readerView({MIN_IMAGE_RATIO}, false)")
    if shot is not None:
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.screenshot(shot, full_page=True)
    browser.set_window(420, 900)
    browser.drain(0.5)
    found["overflow-420"] = browser.eval(f"window.__readerView({MIN_IMAGE_RATIO}, true)")["overflow"]
    browser.set_window(1400, 1000)
    return {kind: items for kind, items in found.items() if items}


def test_every_page_of_the_book_is_built():
    toc = set(book_pages())
    assert set(PENDING_PAGES) <= toc, f"PENDING_PAGES names pages not in _toc.yml: {set(PENDING_PAGES) - toc}"


@pytest.mark.parametrize("page", book_pages())
def test_reader_view(site, page):
    base, html, browser = site
    assert (html / f"{page}.html").exists(), f"{page}.html was not built"
    found = reader_view(browser, f"{base}/{page}.html", SCREENSHOTS / f"{page.replace('/', '__')}.png")
    pending = PENDING_PAGES.get(page, {})
    unexpected = {kind: items for kind, items in found.items() if kind not in pending}
    assert not unexpected, f"{page}:\n" + "\n".join(
        f"  {kind}: {item}" for kind, items in unexpected.items() for item in items[:10])
    fixed = sorted(set(pending) - set(found))
    if fixed:
        pytest.fail(f"{page} passes {fixed} now: remove {'them' if len(fixed) > 1 else 'it'} from PENDING_PAGES")
    if pending:
        pytest.xfail("; ".join(f"{kind}: {why} ({len(found[kind])} found)" for kind, why in pending.items()))
