"""The HTML leaderboard (report/html.py): built from real runs on the embedded data, every link and
picture of every page resolves, and in headless Chromium (Debian's `chromium` + `chromium-driver`,
driven by selenium) the page renders, a screenshot is taken and a table sorts on click."""
from __future__ import annotations

import copy
import functools
import http.server
import re
import shutil
import threading
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from dipbench import config as C
from dipbench import pipeline as P
from dipbench.config import validate

CFG = dict(
    results="results/unused", device="cpu", batch_size=4, seeds=[0, 1],
    datasets={"g": {"images": "skimage32", "n_images": 4, "prior": {"name": "gaussian_fit"}}},
    tasks={"inpaint_half": {"operator": "inpaint_half", "sigma_y": 0.05},
           "sr_x2": {"operator": "sr_block", "params": {"factor": 2}, "sigma_y": 0.05}},
    solvers={"ddrm": {"params": {"eta": 0.85, "eta_b": 1.0}, "sweep": {"steps": [2, 4]}},
             "dps": {"params": {"steps": 3}}},
    metrics=["psnr", "ssim", "lpips_alex"],
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """results/ of a small real grid (measure, solve, score, aggregate) and its report/."""
    from report.build import build_report

    res = tmp_path_factory.mktemp("html") / "results"
    cfg = copy.deepcopy(CFG)
    cfg["results"] = str(res)
    validate(cfg)
    done = set()
    for d, t, s, k in C.planned_runs(cfg):
        meas = res / "measurements" / d / t / f"seed{k}"
        if (d, t, k) not in done:
            P.measure(cfg, d, t, k, meas)
            done.add((d, t, k))
        rd = res / "runs" / d / t / s / f"seed{k}"
        P.solve_or_record(cfg, d, t, s, k, meas, rd, log=lambda *_: None)
        P.score(cfg, meas, rd)
    P.aggregate(cfg, [res / "runs" / d / t / s / f"seed{k}" for d, t, s, k in C.planned_runs(cfg)],
                res / "leaderboard.csv", log=lambda *_: None)
    build_report(cfg, res / "leaderboard.csv", res / "report")
    return res


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if a.get(key):
                self.refs.append(a[key])


def _local_refs(page: Path):
    p = _Links()
    p.feed(page.read_text())
    return [r for r in p.refs if not re.match(r"^[a-z]+:|^#", r)]


def test_every_page_link_and_picture_resolves(site):
    rep = site / "report"
    pages = [rep / "index.html"] + sorted((rep / "pages").glob("*.html"))
    assert len(pages) >= 5
    broken = [(p.name, r) for p in pages for r in _local_refs(p)
              if not (p.parent / urllib.parse.unquote(r.split("#")[0])).resolve().is_file()]
    assert not broken, broken[:10]
    index = (rep / "index.html").read_text()
    assert "Sweep selection: <code>tune</code>" in index and "Holm" in index
    assert "lpips_alex" in index                       # not computed offline: listed once, not a column of dashes
    task = (rep / "pages" / "task__g__inpaint_half.html").read_text()
    assert "Δ vs best (95% CI)" in task and "run.json" in task and 'class="vblock"' in task
    assert "tuning split" in task                        # the selection protocol is said on the page
    assert "none (prior fitted or defined in code)" in task    # the checkpoint-digest column
    # the Markdown/LaTeX tables carry the intervals too
    md = (rep / "tables" / "g.md").read_text()
    assert "[Δ" in md and "Selection (tuning split)" in md


def test_every_latex_table_compiles(site, tmp_path):
    from helpers import compile_latex_tables

    compile_latex_tables(site / "report" / "tables", tmp_path)


def _chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class _Handler(http.server.SimpleHTTPRequestHandler):
    seen: list = []

    def log_request(self, code="-", size="-"):
        type(self).seen.append((self.path, int(code) if str(code).isdigit() else code))

    def log_message(self, *args):
        pass


@pytest.fixture
def browser(site):
    chromium, driver_bin = _chromium(), shutil.which("chromedriver")
    if chromium is None or driver_bin is None:
        pytest.skip("no chromium/chromedriver binary on PATH: on Debian "
                    "`apt-get install -y chromium chromium-driver` (CI installs them)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[test]'")
    _Handler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = Options()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(driver_bin), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        driver.quit()
        server.shutdown()


def _column(driver, table, idx):
    return [tr.find_elements("css selector", "th, td")[idx].get_attribute("data-sort")
            for tr in table.find_elements("css selector", "tbody tr")]


def test_chromium_renders_sorts_and_finds_no_404(browser, site, tmp_path):
    driver, base = browser
    driver.get(f"{base}/report/index.html")
    assert driver.title == "dipbench leaderboard"
    shot = tmp_path / "index.png"
    assert driver.save_screenshot(str(shot))
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] >= 600 and img.shape[1] >= 1000 and img[..., :3].std() > 0.05   # drawn, not blank

    # every page reachable from the index: its links and pictures answer 200
    pages, queue, refs = set(), [f"{base}/report/index.html"], set()
    while queue:
        url = queue.pop()
        if url in pages:
            continue
        pages.add(url)
        driver.get(url)
        assert "dipbench leaderboard" in driver.find_element("css selector", "nav").text
        # pictures shown on load have decoded (a broken image has naturalWidth 0)
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => i.loading !== 'lazy' && i.complete "
            "&& i.naturalWidth === 0).map(i => i.src)")
        assert not broken, (url, broken)
        found = driver.execute_script(
            "return Array.from(document.querySelectorAll('a[href], img[src], link[href], script[src]'))"
            ".map(e => e.href || e.src)")
        for r in found:
            r = r.split("#")[0]
            if r.startswith(base):
                refs.add(r)
                if r.endswith(".html") and "/report/" in r:
                    queue.append(r)
    assert len(pages) >= 5
    for r in sorted(refs):
        with urllib.request.urlopen(r) as resp:            # raises HTTPError on a 404
            assert resp.status == 200, r
    assert not [s for s in _Handler.seen if s[1] == 404], [s for s in _Handler.seen if s[1] == 404][:10]

    # sorting: click the PSNR column of a task leaderboard, ascending then descending
    driver.get(f"{base}/report/pages/task__g__inpaint_half.html")
    table = driver.find_element("css selector", "table.sortable")
    heads = table.find_elements("css selector", "thead th")
    idx = next(i for i, h in enumerate(heads) if h.text.startswith("PSNR"))
    before = _column(driver, table, 0)
    heads[idx].click()
    assert heads[idx].get_attribute("aria-sort") == "ascending"
    vals = [float(v) for v in _column(driver, table, idx)]
    assert vals == sorted(vals) and len(vals) == 2
    heads[idx].click()
    assert heads[idx].get_attribute("aria-sort") == "descending"
    vals = [float(v) for v in _column(driver, table, idx)]
    assert vals == sorted(vals, reverse=True)
    assert sorted(before) == sorted(_column(driver, table, 0))   # same rows, reordered
    # the solver column sorts as text
    heads[0].click()
    names = _column(driver, table, 0)
    assert names == sorted(names, key=str.lower)
