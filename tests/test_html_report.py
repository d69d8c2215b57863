"""The HTML report (``--format html``): rendered string checks, then the page in a real headless Chromium."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.cli import main
from harness.diff import TokenDiff, visible
from harness.report.html import render_html
from harness.report.build import streams
from tests.conftest import fixture

pytestmark = pytest.mark.real_tokenizer

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOSTILE = "</script><script>alert(1)</script> <img src=x onerror=alert(1)>"
NEWLINE = ["--train", "jinja:" + fixture("planted/prompt_newline.jinja"),
           "--deploy", "hf:" + fixture("templates/chatml.jinja")]


def check(out: Path, *pair: str, examples: int = 30, seed: int = 0, fmt: str = "json,md,html") -> int:
    return main(["check", "--model", "qwen2.5", *pair, "--examples", str(examples), "--seed", str(seed),
                 "--report-dir", str(out), "--format", fmt, "--quiet"])


def load(out: Path) -> tuple[dict, str]:
    return json.loads((out / "report.json").read_text()), (out / "report.html").read_text()


@pytest.fixture(scope="module")
def differing(tmp_path_factory) -> Path:
    """Training ends user turns with one extra newline; the deploy side is plain ChatML."""
    out = tmp_path_factory.mktemp("differing")
    assert check(out, *NEWLINE) == 1
    return out


CHATML = ["--train", "jinja:" + fixture("templates/chatml.jinja"), "--deploy", "hf:" + fixture("templates/chatml.jinja")]


@pytest.fixture(scope="module")
def consistent(tmp_path_factory) -> Path:
    """Identical templates, the checks that hold on every conversation of seed 0 (no data-dependent warnings)."""
    out = tmp_path_factory.mktemp("consistent")
    assert check(out, *CHATML, "--checks", "system,answer-stop,stop-words", examples=20) == 0
    return out


@pytest.fixture(scope="module")
def warnings_only(tmp_path_factory) -> Path:
    """Identical templates, all checks: consistent, with boundary-merge and user-control-text warnings."""
    out = tmp_path_factory.mktemp("warnings")
    assert check(out, *CHATML, examples=20) == 0
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """Training injects a default system prompt made of HTML/JS: it reaches the token pieces and the diff."""
    out = tmp_path_factory.mktemp("hostile")
    text = Path(fixture("templates/chatml.jinja")).read_text()
    inject = "{%- if messages[0].role != 'system' %}{{- '<|im_start|>system\\n" + HOSTILE + "<|im_end|>\\n' }}{%- endif %}\n"
    (out / "train.jinja").write_text(inject + text)
    assert check(out / "rep", "--train", f"jinja:{out}/train.jinja", "--deploy", "hf:" + fixture("templates/chatml.jinja"),
                 "--checks", "prompt-prefix") == 1
    return out / "rep"


def first_failing(report: dict) -> tuple[str, dict, dict]:
    """(class element id, check, class) of the first class with streams of the first failing check."""
    for c in report["targets"][0]["checks"]:
        if c["verdict"] == "fail":
            for k, cls in enumerate(c["classes"], 1):
                if cls.get("streams"):
                    return f"div-t0-{c['name']}-{k}", c, cls
    raise AssertionError("no failing class with streams")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside each <script>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.tags and self.tags[-1][0] == "script" and self.lasttag == "script":
            self.scripts.append(data)


parse = Tags


# --- (a) the rendered string -------------------------------------------------------------------------


def test_self_contained_no_network_reference(differing):
    _, html = load(differing)
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "@import" not in html and "url(" not in html and "<link" not in html and "<iframe" not in html
    tags = parse(html)
    assert [t for t, a in tags.tags if t == "script" and "src" in a] == []
    assert [t for t, _ in tags.tags if t in ("img", "link", "iframe", "object", "embed")] == []
    ids = {a["id"] for _, a in tags.tags if "id" in a}
    hrefs = [a["href"] for t, a in tags.tags if t == "a"]
    assert hrefs and all(h.startswith("#") and h[1:] in ids for h in hrefs), "every link is an anchor on the page"


def test_same_seed_gives_byte_identical_html(differing, tmp_path):
    assert check(tmp_path, *NEWLINE) == 1
    assert (tmp_path / "report.html").read_bytes() == (differing / "report.html").read_bytes()
    assert (tmp_path / "report.json").read_bytes() == (differing / "report.json").read_bytes()


def test_verdict_table_cells_link_to_their_sections(differing):
    report, html = load(differing)
    table = html[html.index("<table class=\"verdict-table\">"):html.index("</table>")]
    for c in report["targets"][0]["checks"]:
        want = {"fail": f"fail {c['errors']}/{c['examples_run']}", "warn": f"warn {c['warnings']}/{c['examples_run']}",
                "pass": f"pass {c['examples_run']}", "skipped": "skipped"}[c["verdict"]]
        assert f"<a href=\"#check-t0-{c['name']}\">{want}</a>" in table
        assert f"id=\"check-t0-{c['name']}\"" in html
    assert "fail 30/30" in table


def test_skipped_check_is_shown_with_its_reason(differing):
    report, html = load(differing)
    bos = next(c for c in report["targets"][0]["checks"] if c["name"] == "bos")
    assert bos["verdict"] == "skipped" and bos["explanation"]
    item = re.search(r'<li id="check-t0-bos">(.*?)</li>', html).group(1)
    assert "skipped" in item and bos["explanation"] in item


def test_first_divergence_marked_in_both_streams(differing):
    report, html = load(differing)
    cid, _, cls = first_failing(report)
    assert f'<body data-first="{cid}">' in html
    article = html[html.index(f'id="{cid}"'):]
    article = article[:article.index("</article>")]
    index = cls["first_divergence"]["index"]
    marked = re.findall(r'<div class="tok [^"]*first-divergence" data-index="(\d+)"><span class="i">\d+</span>'
                        r'<span class="id">(\d+)</span><span class="p">(.*?)</span></div>', article)
    pair = cls["first_pair"]
    got = [(i, tid, re.sub(r"<[^>]+>", "", p)) for i, tid, p in marked]
    assert got == [(str(index), str(pair[s]["id"]), visible(pair[s]["piece"])) for s in ("train", "deploy")]
    assert '<span class="ws">␤␤</span>' in marked[0][2]  # whitespace marks set apart from text
    assert "messages[0] · template text" in article and "generation prompt" in article


def test_streams_only_for_shrunk_classes_and_existing_keys_kept(differing):
    report, _ = load(differing)
    keys = {"cause", "cause_summary", "severity", "where", "count", "first_pair", "shrunk", "explanation",
            "counterexample"}
    classes = [k for c in report["targets"][0]["checks"] for k in c["classes"]]
    assert classes
    for k in classes:
        assert keys <= set(k), sorted(keys - set(k))
        assert ("streams" in k) == (k["shrunk"] and "first_divergence" in k)
        assert "first_divergence" not in k or "diff_text" in k
    assert any("streams" in k for k in classes)
    s = first_failing(report)[2]["streams"]
    assert set(s) == {"index", "train", "deploy", "marks", "opcodes", "pieces"}
    assert all(str(i) in s["pieces"] for side in ("train", "deploy") for i in s[side]["ids"])


def long_report() -> dict:
    """A report whose one class has 300/302-token streams parting at token 200 (two ids inserted)."""
    train = list(range(1000, 1300))
    deploy = train[:200] + [7, 8] + train[200:]
    diff = TokenDiff.compute(train, deploy, piece=str)
    assert diff.window("train") == (140, 241) and diff.window("deploy") == (140, 242)
    s = streams(diff, piece=lambda i: f"p{i}")
    assert s["train"] == {"start": 140, "ids": train[140:241], "length": 300}
    cls = {"cause": "template-text", "cause_summary": "x", "severity": "error", "where": "user", "count": 1,
           "first_pair": {"train": {"id": 1200, "piece": "p1200"}, "deploy": {"id": 7, "piece": "p7"}},
           "shrunk": True, "explanation": "x", "counterexample": {"messages": []}, "streams": s,
           "first_divergence": {"index": 200}}
    return {"harness": {"version": "0", "seed": 0, "examples": 1}, "model": {"name": "m"},
            "targets": [{"train": "a", "deploy": "b", "verdict": "inconsistent", "checks": [
                {"name": "prompt-prefix", "verdict": "fail", "examples_run": 1, "errors": 1, "warnings": 0,
                 "classes": [cls]}]}]}


def test_long_stream_is_windowed_with_hidden_counts():
    report = long_report()
    html = render_html(report)
    assert "… 140 identical tokens before (0–139) hidden …" in html
    assert "… 59 more tokens (241–299) hidden …" in html and "… 60 more tokens (242–301) hidden …" in html
    assert html.count('<div class="tok') == 101 + 102
    assert len(re.findall(r'class="tok[^"]* op-insert', html)) == 2  # the inserted run, deploy side only
    assert re.findall(r'first-divergence" data-index="(\d+)"', html) == ["200", "200"]


def test_hostile_text_is_escaped(differing):
    report, _ = load(differing)
    report = copy.deepcopy(report)
    _, c, cls = first_failing(report)
    cls["counterexample"]["messages"][0]["content"] = HOSTILE
    cls["counterexample"]["tools"] = [{"function": {"name": HOSTILE}}]
    cls["explanation"] = cls["cause_summary"] = HOSTILE
    cls["streams"]["pieces"][str(cls["streams"]["train"]["ids"][0])] = HOSTILE
    report["targets"][0]["train"] = report["model"]["name"] = HOSTILE
    report["harness"]["inputs"]["files"][HOSTILE] = HOSTILE
    report["harness"]["versions"][HOSTILE] = HOSTILE
    html = render_html(report)
    assert "<img" not in html and "alert(1)</script>" not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;/script&gt;&lt;script&gt;" in html
    tags = parse(html)
    assert [t for t, _ in tags.tags].count("script") == 1 and "DOMContentLoaded" in "".join(tags.scripts)
    assert "alert" not in "".join(tags.scripts)
    assert not [a for _, a in tags.tags if any(k.startswith("on") for k in a)]


def test_hostile_template_text_through_the_cli(hostile):
    report, html = load(hostile)
    assert "<img" not in html and "<script>alert" not in html
    assert "&lt;" in html and "&gt;" in html
    tags = parse(html)
    assert [t for t, _ in tags.tags].count("script") == 1 and "img" not in [t for t, _ in tags.tags]


def test_consistent_pair_has_no_divergence(consistent):
    report, html = load(consistent)
    assert report["targets"][0]["verdict"] == "consistent"
    assert "first-divergence\" data-index" not in html and 'data-first=""' in html
    cells = re.findall(r'<td class="cell (\w+)">', html)
    assert cells == ["pass"] * 3 == [c["verdict"] for c in report["targets"][0]["checks"]]


def test_warnings_are_shown_but_never_scrolled_to(warnings_only):
    report, html = load(warnings_only)
    verdicts = [c["verdict"] for c in report["targets"][0]["checks"]]
    assert "warn" in verdicts and "fail" not in verdicts
    assert 'data-first=""' in html and 'class="cell warn"' in html
    articles = re.findall(r'<article class="class" id="[^"]+">\n<h4><span class="sev (\w+)">(.*?)</article>', html, re.S)
    assert articles and all(sev == "warning" for sev, _ in articles)
    assert any("first-divergence" in body for _, body in articles)


def test_format_html_alone_and_a_later_run_removes_it(differing, tmp_path):
    assert check(tmp_path / "rep", *NEWLINE, fmt="html") == 1
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["report.html"]
    assert (tmp_path / "rep" / "report.html").read_bytes() == (differing / "report.html").read_bytes()
    assert check(tmp_path / "rep", *NEWLINE, fmt="json") == 1
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["report.json"]


def test_provenance_lists_inputs_versions_and_options(differing):
    report, html = load(differing)
    versions = report["harness"]["versions"]
    assert {"transformers", "tokenizers", "jinja2", "hypothesis"} <= set(versions)
    assert "minijinja" not in versions and "llamafactory" not in versions  # engines this run did not use
    prov = html[html.index('id="provenance"'):]
    for name, sha in report["harness"]["inputs"]["files"].items():
        assert f"<code>{name}</code></td><td><code>{sha}</code>" in prov
    assert f"<td>transformers</td><td><code>{versions['transformers']}</code>" in prov
    assert report["harness"]["inputs"]["sha256"] in html


def test_engine_packages_are_recorded_when_used():
    from importlib.metadata import version

    from harness.cli.check import _versions

    got = _versions(["jinja:.", "tgi:."])
    assert got["minijinja"] == version("minijinja") and "lmdeploy" not in got


# --- (b) a real browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    why = None
    if not Path(CHROMIUM).is_file():
        why = f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = why or "playwright is not installed (pip install playwright)"
    if why:
        if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"HARNESS_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_report(browser, path: Path, height: int = 900):
    """A 1280×``height`` page on ``path``; returns (page, requests, page errors, dialogs)."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    requests, errors, dialogs = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(200)
    return page, requests, errors, dialogs


def inside(box: dict, outer: dict) -> bool:
    return box["y"] >= outer["y"] - 0.5 and box["y"] + box["height"] <= outer["y"] + outer["height"] + 0.5


@pytest.mark.browser
def test_browser_differing_pair_shows_first_divergence_on_load(browser, differing):
    report, _ = load(differing)
    cid, c, cls = first_failing(report)
    page, requests, errors, dialogs = open_report(browser, differing / "report.html", height=560)
    assert page.evaluate("window.scrollY") > 0  # below the fold of a 560-px window: the page scrolled to it
    cell = page.locator(f'.verdict-table td.cell.fail a[href="#check-t0-{c["name"]}"]')
    assert cell.inner_text() == f"fail {c['errors']}/{c['examples_run']}"
    window = {"y": 0, "height": page.evaluate("window.innerHeight")}
    for side in ("train", "deploy"):
        tok = page.locator(f"#{cid} .stream.{side} .tok.first-divergence")
        assert tok.count() == 1
        box, column = tok.bounding_box(), page.locator(f"#{cid} .stream.{side} .stream-body").bounding_box()
        assert inside(box, window) and inside(box, column), (side, box, column)
        want = cls["first_pair"][side]
        assert tok.locator(".id").inner_text() == str(want["id"])
        assert tok.locator(".p").inner_text() == visible(want["piece"])
        assert tok.get_attribute("data-index") == str(cls["first_divergence"]["index"])
    labels = page.locator(f"#{cid} .group").all_inner_texts()
    assert "messages[0] · template text" in labels and "generation prompt" in labels
    assert requests == [(differing / "report.html").as_uri()]
    assert errors == [] and dialogs == []
    page.close()


@pytest.mark.browser
def test_browser_long_stream_scrolls_both_columns_to_the_divergence(browser, tmp_path):
    (tmp_path / "report.html").write_text(render_html(long_report()))
    page, requests, errors, dialogs = open_report(browser, tmp_path / "report.html")
    window = {"y": 0, "height": page.evaluate("window.innerHeight")}
    tops = []
    for side in ("train", "deploy"):
        body = page.locator(f".stream.{side} .stream-body")
        assert body.evaluate("b => b.scrollTop") > 600  # 60 rows and more above it
        tok = page.locator(f".stream.{side} .tok.first-divergence")
        box = tok.bounding_box()
        assert inside(box, window) and inside(box, body.bounding_box()), side
        tops.append(box["y"])
    assert abs(tops[0] - tops[1]) < 1  # the same row in both columns
    page.locator(".stream.train .stream-body").evaluate("b => { b.scrollTop -= 100; }")
    page.wait_for_timeout(100)
    assert abs(page.locator(".stream.deploy .tok.first-divergence").bounding_box()["y"] - tops[1] - 100) < 1
    assert errors == [] and dialogs == [] and requests == [(tmp_path / "report.html").as_uri()]
    page.close()


@pytest.mark.browser
def test_browser_consistent_pair_all_pass(browser, consistent):
    report, _ = load(consistent)
    page, requests, errors, dialogs = open_report(browser, consistent / "report.html")
    checks = report["targets"][0]["checks"]
    assert page.locator(".verdict-table td.cell").all_inner_texts() == [f"pass {c['examples_run']}" for c in checks]
    assert page.locator(".verdict-table td.cell.pass").count() == len(checks) == 3
    assert page.locator(".verdict-table td.verdict").inner_text() == "consistent"
    assert page.locator(".first-divergence").count() == 0
    assert page.evaluate("window.scrollY") == 0
    assert requests == [(consistent / "report.html").as_uri()] and errors == [] and dialogs == []
    page.close()


@pytest.mark.browser
def test_browser_hostile_text_stays_text(browser, differing, hostile, tmp_path):
    report, _ = load(differing)
    _, _, cls = first_failing(report)
    cls["counterexample"]["messages"][0]["content"] = HOSTILE
    (tmp_path / "report.html").write_text(render_html(report))
    for path in (tmp_path / "report.html", hostile / "report.html"):
        page, requests, errors, dialogs = open_report(browser, path)
        assert dialogs == [] and errors == [] and requests == [path.as_uri()]
        assert page.locator("img").count() == 0 and page.locator("script").count() == 1
        page.close()
    page, *_ = open_report(browser, tmp_path / "report.html")
    assert page.locator(".conversation pre").first.inner_text() == HOSTILE  # shown as text
    page.close()
    page, *_ = open_report(browser, hostile / "report.html")
    pieces = "".join(page.locator(".stream.train .p").all_inner_texts())
    assert visible(HOSTILE) in pieces  # the template's text, token by token, as text
    page.close()
