"""HTML release report: one self-contained page rendered server-side from the report dict.

Inline CSS (``html.css``) and a few lines of inline JS (scroll the first failing class's first divergence into
view in both stream columns; keep the two columns of a pair scrolling together). Nothing is loaded from
anywhere: no external fonts, images, scripts or stylesheets. Every string from the report — templates,
conversations, file names — goes through :func:`html.escape`, and no report text is ever placed in the script.
"""

from __future__ import annotations

import json
import re
from html import escape
from importlib.resources import files
from typing import Any, Iterable

from harness.diff import visible
from harness.report.build import cell_count

_WS = re.compile("[␠␤⇥␍]+")
_PART = re.compile(r"messages\[\d+\]\.\w+")
_EXIT = {0: "0 — consistent", 1: "1 — inconsistencies found", 2: "2 — bad input"}

_JS = """
document.addEventListener("DOMContentLoaded", function () {
  var first = document.body.getAttribute("data-first");
  var box = first && document.getElementById(first);
  if (box) {
    var toks = box.querySelectorAll(".tok.first-divergence");
    toks.forEach(function (t) {  /* centre it in its own column: the same row in both columns */
      var col = t.closest(".stream-body");
      if (col) col.scrollTop = t.offsetTop - (col.clientHeight - t.offsetHeight) / 2;
    });
    if (toks.length) {  /* then scroll the page only as far as needed to show it */
      var r = toks[0].getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) window.scrollBy(0, r.top - (window.innerHeight - r.height) / 2);
    }
  }
  document.querySelectorAll(".streams").forEach(function (pair) {
    var cols = pair.querySelectorAll(".stream-body"), busy = false;
    cols.forEach(function (col) {
      col.lastTop = col.scrollTop;
      col.addEventListener("scroll", function () {
        var delta = col.scrollTop - col.lastTop;
        col.lastTop = col.scrollTop;
        if (busy || !delta) return;
        busy = true;
        cols.forEach(function (o) { if (o !== col) { o.scrollTop += delta; o.lastTop = o.scrollTop; } });
        busy = false;
      });
    });
  });
});
"""


def e(value: Any) -> str:
    """Any value as escaped HTML text (quotes too, so it is safe inside attributes)."""
    return escape(str(value), quote=True)


def slug(text: str) -> str:
    """An id fragment: ``[a-z0-9-]`` only (report text never reaches an id verbatim)."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def _css() -> str:
    return files("harness.report").joinpath("html.css").read_text(encoding="utf-8")


def _cell_text(c: dict[str, Any]) -> str:
    """``fail k/N``, ``warn k/N``, ``pass N`` or ``skipped`` (as in the Markdown report)."""
    count = cell_count(c)
    return f"{c['verdict']} {count}" if count else c["verdict"]


def _check_id(t: int, check: str) -> str:
    return f"check-t{t}-{slug(check)}"


def _class_id(t: int, check: str, k: int) -> str:
    return f"div-t{t}-{slug(check)}-{k}"


def render_html(report: dict[str, Any]) -> str:
    """The whole page. Same report dict → byte-identical HTML (no timestamps; order as in the dict)."""
    h, model = report["harness"], report["model"]
    first = _first_failing(report)
    body = [_header(h, model), _verdicts(report), _baseline(report.get("baseline"))]
    for t, target in enumerate(report["targets"]):
        body.append(_target(t, target))
    body.append(_provenance(report))
    title = f"Template consistency report — {model.get('name', '?')}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{e(title)}</title>\n<style>\n{_css()}</style>\n<script>{_JS}</script>\n</head>\n"
            f"<body data-first=\"{e(first or '')}\">\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def _first_failing(report: dict[str, Any]) -> str | None:
    """The id of the first class with token streams of the first failing check (warnings never scroll)."""
    for t, target in enumerate(report["targets"]):
        for c in target["checks"]:
            if c["verdict"] == "fail":
                for k, cls in enumerate(c.get("classes") or [], 1):
                    if cls.get("streams") and cls.get("severity") == "error":
                        return _class_id(t, c["name"], k)
    return None


def _header(h: dict[str, Any], model: dict[str, Any]) -> str:
    status = h.get("exit_status")
    inputs = h.get("inputs") or {}
    rows = [("model", model.get("name", "?")), ("harness", h.get("version", "?")), ("seed", h.get("seed")),
            ("examples", f"{h.get('examples')} conversations per target"),
            ("exit status", _EXIT.get(status, status) if status is not None else "not recorded"),
            ("inputs sha256", inputs.get("sha256", "not recorded"))]
    cls = {0: "ok", 1: "bad", 2: "bad"}.get(status, "")
    meta = "".join(f"<div><dt>{e(k)}</dt><dd{' class=' + chr(34) + cls + chr(34) if k == 'exit status' else ''}>"
                   f"{e(v)}</dd></div>" for k, v in rows)
    return (f"<header><h1>Template consistency report <span class=\"model\">{e(model.get('name', '?'))}</span></h1>"
            f"<dl class=\"meta\">{meta}</dl></header>")


def _verdicts(report: dict[str, Any]) -> str:
    targets = report["targets"]
    names = [c["name"] for c in targets[0]["checks"]] if targets else []
    head = "".join(f"<th>{e(n)}</th>" for n in ("train", "deploy", "verdict", *names))
    rows = []
    for t, target in enumerate(targets):
        cells = [f"<td><code>{e(target['train'])}</code></td>", f"<td><code>{e(target['deploy'])}</code></td>",
                 f"<td class=\"verdict {slug(target['verdict'])}\">{e(target['verdict'])}</td>"]
        by_name = {c["name"]: c for c in target["checks"]}
        for n in names:
            c = by_name.get(n)
            if c is None:
                cells.append("<td class=\"cell none\">–</td>")
                continue
            cells.append(f"<td class=\"cell {slug(c['verdict'])}\"><a href=\"#{_check_id(t, n)}\">"
                         f"{e(_cell_text(c))}</a></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<section class=\"verdicts\"><h2>Verdicts</h2><p class=\"note\">Cells: failing/checked conversations "
            "(pass: checked). Each cell links to its check.</p><div class=\"scroll-x\"><table class=\"verdict-table\">"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")


def _baseline(b: dict[str, Any] | None) -> str:
    """The ``--baseline`` comparison: its summary line, then new and fixed classes by identity ('' without one)."""
    if not b:
        return ""
    from harness.baseline import SECTIONS, ClassId

    out = [f"<section class=\"baseline\" id=\"baseline\"><h2>Baseline</h2><p>Compared with "
           f"<code>{e(b['path'])}</code> (sha256 <code>{e(b['sha256'][:16])}…</code>): {e(b['summary'])}.</p>"]
    for label, key in SECTIONS:
        css = "bad" if key == "new" else "ok"
        if b[key]:
            items = "".join(f"<li>{e(ClassId.from_json(k).describe())}</li>" for k in b[key])
            out.append(f"<h3 class=\"{css}\">{e(label)}</h3><ul class=\"{key}\">{items}</ul>")
    return "".join(out) + "</section>"


def _target(t: int, target: dict[str, Any]) -> str:
    out = [f"<section class=\"target\" id=\"target-{t}\"><h2><code>{e(target['train'])}</code> vs "
           f"<code>{e(target['deploy'])}</code> <span class=\"verdict {slug(target['verdict'])}\">"
           f"{e(target['verdict'])}</span></h2>"]
    if target.get("error"):
        out.append(f"<p class=\"error\">{e(target['error'])}</p>")
    quiet = []
    for c in target["checks"]:
        if c["verdict"] in ("fail", "warn"):
            out.append(_check(t, target, c))
        else:
            reason = f" — {e(c['explanation'])}" if c["verdict"] == "skipped" and c.get("explanation") else ""
            quiet.append(f"<li id=\"{_check_id(t, c['name'])}\"><span class=\"badge {slug(c['verdict'])}\">"
                         f"{e(_cell_text(c))}</span> <b>{e(c['name'])}</b>{reason}</li>")
    if quiet:
        out.append("<h3>Other checks</h3><ul class=\"quiet\">" + "".join(quiet) + "</ul>")
    return "\n".join(out) + "</section>"


def _check(t: int, target: dict[str, Any], c: dict[str, Any]) -> str:
    classes = c.get("classes") or []
    out = [f"<section class=\"check\" id=\"{_check_id(t, c['name'])}\"><h3><span class=\"badge "
           f"{slug(c['verdict'])}\">{e(_cell_text(c))}</span> {e(c['name'])}</h3>",
           f"<p class=\"note\">{e(c['errors'])} errors and {e(c['warnings'])} warnings in {e(c['examples_run'])} "
           f"conversations, {len(classes)} divergence class(es).</p>"]
    if classes:
        rows = "".join(f"<tr><td><a href=\"#{_class_id(t, c['name'], k)}\">{k}</a></td>"
                       f"<td class=\"sev {slug(cls['severity'])}\">{e(cls['severity'])}</td>"
                       f"<td><code>{e(cls['cause'])}</code></td><td>{e(cls.get('where') or '')}</td>"
                       f"<td><code>{e(_pair(cls))}</code></td><td class=\"num\">{e(cls['count'])}</td></tr>"
                       for k, cls in enumerate(classes, 1))
        out.append("<table class=\"classes\"><thead><tr><th>#</th><th>severity</th><th>cause</th><th>where</th>"
                   "<th>first ids (train → deploy)</th><th>conversations</th></tr></thead>"
                   f"<tbody>{rows}</tbody></table>")
    out += [_class(t, c["name"], k, cls) for k, cls in enumerate(classes, 1)]
    return "\n".join(out) + "</section>"


def _pair(cls: dict[str, Any]) -> str:
    def one(tok: dict[str, Any] | None) -> str:
        return "end" if tok is None else f"{tok['id']} {visible(str(tok.get('piece')))}"
    pair = cls.get("first_pair") or {}
    if pair.get("train") is None and pair.get("deploy") is None:  # a later run of the diff, or no diff at all
        return "(later in the prompt)" if cls.get("first_divergence") else "–"
    return f"{one(pair.get('train'))} → {one(pair.get('deploy'))}"


def _class(t: int, check: str, k: int, cls: dict[str, Any]) -> str:
    where = f" at {e(cls['where'])}" if cls.get("where") else ""
    out = [f"<article class=\"class\" id=\"{_class_id(t, check, k)}\">",
           f"<h4><span class=\"sev {slug(cls['severity'])}\">{e(cls['severity'])}</span> {k}. "
           f"<code>{e(cls['cause'])}</code>{where} <span class=\"count\">{e(cls['count'])} conversation(s)</span></h4>",
           f"<p><b>Cause:</b> {e(cls.get('cause_summary') or '')}.</p>",
           f"<p><b>Why:</b> {e(cls.get('explanation') or '')}</p>"]
    if cls.get("first_divergence") and cls.get("diff_text"):
        out.append(f"<p class=\"headline\">{e(cls['diff_text'].splitlines()[0])}</p>")
    if cls.get("streams"):
        out.append(_streams(cls["streams"]))
    elif cls.get("diff_text"):
        out.append(f"<pre class=\"diff\">{e(cls['diff_text'])}</pre>")
    if cls.get("tokens"):
        tokens = json.dumps(cls["tokens"], indent=2, ensure_ascii=False)
        out.append(f"<p><b>Tokens:</b></p><pre class=\"json\">{e(tokens)}</pre>")
    if cls.get("records"):
        from harness.report.build import records_line

        out.append(f"<p class=\"records\"><b>Records:</b> {e(records_line(cls))}</p>")
    if cls.get("counterexample"):
        label = "Minimal conversation" if cls.get("shrunk") else "Counterexample as found (not shrunk)"
        if cls.get("counterexample_source"):
            label = f"Record {e(cls['counterexample_source'])} (as found)"
        out.append(f"<h5>{label}</h5>" + _conversation(cls["counterexample"]))
    return "\n".join(out) + "</article>"


def _streams(s: dict[str, Any]) -> str:
    """Training ids left, deploy ids right, one row per token, grouped by message span."""
    pieces = s.get("pieces") or {}
    cols = []
    for side, title in (("train", "training"), ("deploy", "deploy")):
        runs = [(op[1], op[2], op[0]) if side == "train" else (op[3], op[4], op[0]) for op in s.get("opcodes") or []]
        cols.append(_column(side, title, s[side], s["index"], (s.get("marks") or {}).get(side) or [], runs, pieces))
    legend = ("<div class=\"legend\"><span class=\"key first\">first divergence</span><span class=\"key del\">training "
              "only</span><span class=\"key ins\">deploy only</span><span class=\"key tmpl\">template text</span>"
              "<span>whitespace: ␠ space, ␤ newline, ⇥ tab</span></div>")
    return legend + "<div class=\"streams\">" + "".join(cols) + "</div>"


def _column(side: str, title: str, stream: dict[str, Any], first: int, marks: list, runs: list,
            pieces: dict[str, str]) -> str:
    start, ids, length = stream["start"], stream["ids"], stream["length"]
    end = start + len(ids)
    rows = []
    if start:
        rows.append(f"<div class=\"hidden\">… {start} identical tokens before (0–{start - 1}) hidden …</div>")
    parts = [m for m in marks if _PART.fullmatch(m[2])]
    extents = [m for m in marks if not _PART.fullmatch(m[2])]
    current = None
    for i, tid in zip(range(start, end), ids):
        msg = next((m[2] for m in extents if m[0] <= i < m[1]), None)
        part = next((m[2] for m in parts if m[0] <= i < m[1]), None)
        if (msg, part) != current:
            new_msg = current is None or msg != current[0]
            label = part or (f"{msg} · template text" if msg and msg.startswith("messages[") else msg)
            label = label or "template text"
            rows.append(f"<div class=\"group {'msg' if part else 'tmpl'}{' boundary' if new_msg else ''}\">"
                        f"{e(label)}</div>")
            current = (msg, part)
        rows.append(_token(i, tid, pieces.get(str(tid), "?"), first, part, runs))
    if end < length:
        rows.append(f"<div class=\"hidden\">… {length - end} more tokens ({end}–{length - 1}) hidden …</div>")
    return (f"<div class=\"stream {side}\"><div class=\"stream-head\">{title} <span>{length} tokens</span></div>"
            f"<div class=\"stream-body\">{''.join(rows)}</div></div>")


def _token(i: int, tid: int, piece: str, first: int, label: str | None, runs: Iterable) -> str:
    classes = ["tok", "msg" if label else "tmpl"]
    tag = next((r[2] for r in runs if r[0] <= i < r[1]), None)
    if tag:
        classes.append(f"op-{tag}")
    if i == first:
        classes.append("first-divergence")
    return (f"<div class=\"{' '.join(classes)}\" data-index=\"{i}\"><span class=\"i\">{i}</span>"
            f"<span class=\"id\">{tid}</span><span class=\"p\">{_ws(e(visible(piece)))}</span></div>")


def _ws(escaped: str) -> str:
    """Whitespace marks (already visible: ␠ ␤ ⇥ ␍) dimmed so they read apart from text."""
    return _WS.sub(lambda m: f"<span class=\"ws\">{m.group(0)}</span>", escaped)


def _conversation(conv: dict[str, Any]) -> str:
    """Each message with its path (``messages[3].content``), its role and every field as text."""
    out = ["<div class=\"conversation\">"]
    for i, m in enumerate(conv.get("messages") or []):
        role = m.get("role", "?") if isinstance(m, dict) else "?"
        out.append(f"<div class=\"message role-{slug(role)}\"><div class=\"mhead\"><code>messages[{i}]</code> "
                   f"<b>{e(role)}</b></div>")
        for key, value in (m.items() if isinstance(m, dict) else []):
            if key == "role":
                continue
            text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
            shown = "<i>(empty)</i>" if text == "" else "<i>(null)</i>" if value is None else e(text)
            out.append(f"<div class=\"field\"><code class=\"path\">messages[{i}].{e(key)}</code>"
                       f"<pre>{shown}</pre></div>")
        out.append("</div>")
    for key, value in conv.items():
        if key != "messages":
            out.append(f"<div class=\"field\"><code class=\"path\">{e(key)}</code>"
                       f"<pre>{e(json.dumps(value, indent=2, ensure_ascii=False))}</pre></div>")
    return "".join(out) + "</div>"


def _provenance(report: dict[str, Any]) -> str:
    h = report["harness"]
    inputs = dict(h.get("inputs") or {})
    file_rows = "".join(f"<tr><td><code>{e(name)}</code></td><td><code>{e(sha)}</code></td></tr>"
                        for name, sha in sorted((inputs.pop("files", None) or {}).items()))
    versions = h.get("versions") or {}
    version_rows = "".join(f"<tr><td>{e(k)}</td><td><code>{e(v)}</code></td></tr>" for k, v in sorted(versions.items()))
    option_rows = "".join(f"<tr><td>{e(k)}</td><td><code>{e(json.dumps(v, ensure_ascii=False))}</code></td></tr>"
                          for k, v in sorted(inputs.items()))
    sides = {(str(d.get("spec", "?")), str(d.get("kind", "?")), str(d.get("template_sha256", "–"))): None
             for target in report["targets"] for d in ((target.get("renderers") or {}).get(side)
                                                      for side in ("train", "deploy")) if isinstance(d, dict)}
    templates = "".join(f"<tr><td><code>{e(spec)}</code></td><td>{e(kind)}</td><td><code>{e(sha)}</code></td></tr>"
                        for spec, kind, sha in sides)
    out = ["<section class=\"provenance\" id=\"provenance\"><h2>Provenance</h2>",
           f"<p>seed <code>{e(h.get('seed'))}</code>, harness <code>{e(h.get('version'))}</code></p>"]
    for title, rows, heads in (("Inputs", file_rows, ("file", "sha256")),
                               ("Templates", templates, ("spec", "kind", "sha256")),
                               ("Library and engine versions", version_rows, ("package", "version")),
                               ("Options", option_rows, ("option", "value"))):
        if rows:
            th = "".join(f"<th>{x}</th>" for x in heads)
            out.append(f"<h3>{title}</h3><table class=\"prov\"><thead><tr>{th}</tr></thead>"
                       f"<tbody>{rows}</tbody></table>")
    return "\n".join(out) + "</section>"
