"""The annotated-source HTML report of a real traced run, checked as text and in headless Chromium.

The browser tests use the system's Chromium and chromedriver (Debian:
chromium, chromium-driver) through selenium, which is told where the
driver is so that it never downloads one; they skip with a reason where
any of them (or jinja2) is missing.
"""
import gc
import os
import re
import struct
import sys
from collections import namedtuple

import pytest
from test_cli import line_in, load, run, write

import mempulse

MiB = 1 << 20
try:
    import jinja2  # noqa: F401
except ImportError:
    pytestmark = pytest.mark.skip(reason="jinja2 is not installed (pip install mempulse[html])")

# A directory and a file whose joined path reads <script>alert(1)</script>.py,
# and source text that would run if it were markup.
EVIL_DIR = "<script>alert(1)<"
EVIL_FILE = "script>.py"
EVIL_NAME = EVIL_DIR + "/" + EVIL_FILE
EVIL = """
import mmap

TEXT = "<script>alert(2)</script><img src=x onerror=alert(3)>"  # L:text


def grow(mib):
    m = mmap.mmap(-1, mib << 20)
    m.write(b"g" * (mib << 20))  # L:write
    return m


def never_called():
    return "<b>not bold</b>"  # L:never


big = grow(24)  # L:big
small = grow(2)  # L:small
big.close()  # L:free
"""


def which(name):
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture
def traced(tmpdir):
    """A real run of EVIL under mempulse run --html: (tmpdir, script, result, page path).

    Its top lists hold every line (--top 50): at depth 2 ``import mmap``
    adds importlib's lines, a number that depends on the interpreter.
    """
    script = write(tmpdir, EVIL_NAME, EVIL)
    status, out, err = run(tmpdir, ["run", "-q", "--depth", "2", "--top", "50", "-o", "r.json", "--html", "r.html", EVIL_NAME])
    assert status == 0, err
    return tmpdir, script, load(str(tmpdir.join("r.json"))), str(tmpdir.join("r.html"))


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def test_the_page_is_self_contained_and_escaped(traced):
    tmpdir, script, result, path = traced
    page = read(path)
    assert page.startswith("<!DOCTYPE html>")
    # Names and source are text: only mempulse's own script element.
    assert len(re.findall(r"<script\b", page)) == 1
    assert "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.py" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;&lt;img src=x onerror=alert(3)&gt;" in page
    # Nothing from the network: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    # Every executed line has its anchored row; the others are dimmed.
    for marker in ("L:text", "L:write", "L:big", "L:small", "L:free"):
        assert re.search(r'<tr class="run" id="L1-%d">' % line_in(script, marker), page), marker
    assert 'id="L1-%d"' % line_in(script, "L:never") not in page
    assert page.count('<tr class="dim">') >= 5
    # The headers say which figure is which.
    for header in ("Net increment", "Largest single", "Peak RSS", "USS after", "Hits"):
        assert ">%s</th>" % header in page
    assert 'id="legend"' in page


def test_without_its_source_the_page_still_lists_the_lines(traced):
    tmpdir, script, result, path = traced
    os.remove(script)
    status, out, err = run(tmpdir, ["report", "r.json", "-o", "gone.html"])
    assert status == 0, err
    page = read(str(tmpdir.join("gone.html")))
    assert "Source not available" in page
    gone = set((r.filename, r.lineno) for r in result if not os.path.exists(os.path.join(str(tmpdir), r.filename)))
    assert page.count("(source not available)") == len(gone) >= 5
    # No source, no unexecuted lines to show.
    section = page[page.index('<section class="file" id="file-1">'):]
    assert '<tr class="dim">' not in section[:section.index("</section>")]


MemoryPoint = getattr(mempulse, "MemoryPoint", None) or namedtuple(
    "MemoryPoint", ["time", "rss", "uss", "filename", "lineno"]
)


class WithSeries(mempulse.TraceResult):
    """A result with a series whatever this mempulse's TraceResult has (a subclass gets a __dict__)."""


def with_series(result, script):
    """``result`` with 200 readings over 2 s: RSS rising while line L:big runs."""
    big = line_in(script, "L:big")
    copy = WithSeries(list(result), result.metadata)
    real_name = [r.filename for r in result if r.lineno == big][0]
    points = []
    for i in range(200):
        rss = (20 + (i if i < 120 else 120)) * MiB // 4
        lineno = big if 40 <= i < 120 else None
        points.append(MemoryPoint(i / 100.0, rss, None if i % 50 == 7 else rss - MiB,
                                  real_name if lineno else None, lineno))
    copy.series = points
    return copy


def test_the_timeline_is_an_inline_svg_with_the_top_lines_marked(traced, monkeypatch):
    from mempulse.reporters.html_report import render_html

    tmpdir, script, result, path = traced
    page = read(path)
    if not getattr(result, "series", None):
        assert 'id="no-timeline"' in page
    monkeypatch.chdir(tmpdir)
    page = render_html(with_series(result, script))
    assert 'id="no-timeline"' not in page
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert len(re.search(r'<polyline class="rss" points="([^"]*)"', svg).group(1).split()) == 200
    assert len(re.findall(r'<polyline class="uss"', svg)) == 5  # broken where USS is unknown
    big = line_in(script, "L:big")
    marks = re.findall(r'<a href="#(L1-\d+)" class="mark">', svg)
    assert marks[0] == "L1-%d" % big
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.py:%d" % big in svg


# ---- in a real browser ------------------------------------------------------------


def short_temp_dir(tmp_path_factory):
    """A directory for Chromium's temporary files, inside pytest's temporary tree.

    Chromium makes its profile's lock socket in TMPDIR
    (org.chromium.Chromium.XXXXXX/SingletonSocket) and leaves it behind when
    chromedriver ends it; given a TMPDIR of ours, nothing lands in /tmp.  A
    socket's path has room for about 107 bytes: where pytest's tree is too
    deep for that, a directory of the system's, removed after the test.
    """
    import shutil
    import tempfile

    path = str(tmp_path_factory.mktemp("chrome"))
    if len(path) + len("/org.chromium.Chromium.XXXXXX/SingletonSocket") < 100:
        return path, lambda: None
    path = tempfile.mkdtemp(prefix="mempulse-chrome-")
    return path, lambda: shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def browser(tmp_path_factory):
    """Headless Chromium driven by the system's chromedriver; quit after the test."""
    if sys.version_info < (3, 8):
        pytest.skip("selenium 4 needs Python 3.8+")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed")
    driver_path = which("chromedriver")
    chromium = which("chromium") or which("chromium-browser") or which("google-chrome")
    if driver_path is None or chromium is None:
        pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    temp, remove_temp = short_temp_dir(tmp_path_factory)
    env = dict(os.environ, TMPDIR=temp)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path, env=env), options=options)
        try:
            yield driver
        finally:
            driver.quit()
            # Its socket closes when the object is collected (PyPy: not at once).
            del driver
            gc.collect()
    finally:
        remove_temp()


def no_alert(driver):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return True
    raise AssertionError("the page opened an alert: %r" % text)


def column(driver, table_id, index):
    """The sort keys of the visible rows of a table's column ``index``."""
    script = (
        "return Array.prototype.map.call(document.querySelectorAll('#%s tbody tr'), function (r) {"
        " return r.style.display === 'none' ? null : r.cells[%d].getAttribute('data-sort'); })"
        % (table_id, index)
    )
    return [v for v in driver.execute_script(script) if v is not None]


def click(driver, element):
    """Click ``element`` once scrolled to the middle of the window (clear of sticky headers)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def numbers(values):
    return [float(v) if v != "" else float("-inf") for v in values]


def test_the_report_works_in_chromium(traced, browser):
    from selenium.webdriver.common.by import By

    tmpdir, script, result, path = traced
    browser.get("file://" + path)
    assert no_alert(browser)
    assert browser.title.startswith("mempulse ")
    # The escape case is inert and shows as text.
    names = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "section.file h3")]
    assert names[0] == EVIL_NAME  # then importlib's, if any
    text_row = browser.find_element(By.ID, "L1-%d" % line_in(script, "L:text"))
    assert '"<script>alert(2)</script><img src=x onerror=alert(3)>"' in text_row.text
    assert browser.execute_script("return document.querySelectorAll('img, b').length") == 0

    # Rows are there, the worst line first.
    big = line_in(script, "L:big")
    rows = browser.find_elements(By.CSS_SELECTOR, "#top-increment tbody tr")
    assert len(rows) == len(set((r.filename, r.lineno) for r in result))
    assert rows[0].find_element(By.TAG_NAME, "a").text in (EVIL_NAME + ":%d" % big,
                                                             EVIL_NAME + ":%d" % line_in(script, "L:write"))

    # Clicking a header sorts: numbers from the largest, then the other way.
    header = browser.find_element(By.XPATH, "//table[@id='top-peak']//th[text()='Net increment']")
    click(browser, header)
    assert header.get_attribute("aria-sort") == "descending"
    values = numbers(column(browser, "top-peak", 3))
    assert values == sorted(values, reverse=True) and values[0] >= 20 * MiB
    click(browser, header)
    assert header.get_attribute("aria-sort") == "ascending"
    values = numbers(column(browser, "top-peak", 3))
    assert values == sorted(values) and values[0] <= -20 * MiB  # big.close()
    line_header = browser.find_element(By.XPATH, "//table[@id='top-peak']//th[text()='Line']")
    click(browser, line_header)
    lines = column(browser, "top-peak", 1)
    assert lines == sorted(lines, key=lambda v: v.lower())

    # Filtering: only the matching rows stay, and the count says so.
    box = browser.find_element(By.CSS_SELECTOR, "input.filter[data-table='per-function']")
    box.send_keys("grow")
    shown = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#per-function tbody tr") if r.is_displayed()]
    assert len(shown) == 1 and shown[0].startswith("grow ")
    count = browser.find_element(By.CSS_SELECTOR, ".count[data-for='per-function']").text
    assert re.match(r"^1 of \d+ rows$", count), count

    # A summary row jumps to its line in the source.
    link = browser.find_element(By.CSS_SELECTOR, "#top-increment a[href='#L1-%d']" % big)
    click(browser, link)
    assert browser.current_url.endswith("#L1-%d" % big)
    target = browser.find_element(By.ID, "L1-%d" % big)
    assert browser.execute_script("return document.querySelector(':target') === arguments[0]", target)
    assert "big = grow(24)" in target.text
    in_view = browser.execute_script(
        "var r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight", target
    )
    assert in_view

    # Unexecuted lines are dimmed, and can be hidden.
    never = browser.find_element(By.XPATH, "//tr[@class='dim'][contains(., 'not bold')]")
    assert never.is_displayed()
    click(browser, browser.find_element(By.ID, "executed-only"))
    assert not never.is_displayed() and target.is_displayed()
    assert no_alert(browser)

    shot = str(tmpdir.join("report.png"))
    assert browser.save_screenshot(shot)
    with open(shot, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24])[0] >= 1000


def test_the_timeline_renders_in_chromium(traced, browser, monkeypatch):
    from selenium.webdriver.common.by import By

    from mempulse.reporters.html_report import render_html

    tmpdir, script, result, path = traced
    monkeypatch.chdir(tmpdir)
    page = str(tmpdir.join("series.html"))
    with open(page, "wb") as f:
        f.write(render_html(with_series(result, script)).encode("utf-8"))
    browser.get("file://" + page)
    assert no_alert(browser)
    chart = browser.find_element(By.CSS_SELECTOR, "svg.chart")
    assert chart.size["width"] > 600 and chart.size["height"] > 100
    assert browser.execute_script("return document.querySelector('svg.chart polyline.rss').points.numberOfItems") == 200
    mark = browser.find_element(By.CSS_SELECTOR, "svg.chart a.mark")
    big = line_in(script, "L:big")
    assert mark.get_dom_attribute("href") == "#L1-%d" % big
    click(browser, mark.find_element(By.TAG_NAME, "text"))
    assert browser.current_url.endswith("#L1-%d" % big)
    browser.save_screenshot(str(tmpdir.join("timeline.png")))
