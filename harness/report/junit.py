"""JUnit XML report (``report.junit.xml``) for CI test publishers, rendered from the report dict.

One ``<testsuite>`` per target (train spec vs deploy spec), one ``<testcase>`` per check: a check that fails (an
error class; a warning class too when the run is ``--strict``) is a ``<failure>`` whose message is the lead
class's cause and first divergence and whose text lists every class, the lead class's TokenDiff and its minimal
counterexample; a check with warnings only passes with them in ``<system-out>``; a skipped check is
``<skipped>``; a target that errored is one ``<error>`` testcase. With a ``--baseline``, only classes the baseline
lacks fail a testcase (known ones are listed in ``<system-out>``), as the exit status does. ``time="0"``
everywhere and no timestamp or hostname: same report → same bytes. Text XML 1.0 cannot hold (NUL and other C0
controls, lone surrogates, U+FFFE/U+FFFF) is written as a visible ``\\xNN``/``\\uNNNN`` escape."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from harness.baseline import ClassId, class_id
from harness.report.build import first_ids

SUITE = "template-harness"
_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 forbids replaced by its Python escape (``\\x00``, ``\\ud800``)."""
    return _ILLEGAL.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii")
                        if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def suite_name(target: dict[str, Any]) -> str:
    return f"{SUITE}.{target['train']} vs {target['deploy']}"


def _headline(k: dict[str, Any]) -> str:
    """The lead class in one line: its cause, where, and the TokenDiff's headline (or the explanation)."""
    first = (k.get("diff_text") or k.get("explanation") or "").split("\n", 1)[0]
    where = f" at {k['where']}" if k.get("where") else ""
    return f"{k['severity']} {k['cause']}{where}: {first}"


def _body(target: dict[str, Any], check: dict[str, Any], lead: dict[str, Any], known: list[dict[str, Any]]) -> str:
    classes = check.get("classes") or []
    lines = [f"{check['name']}: {check['errors']} errors and {check['warnings']} warnings in "
             f"{check['examples_run']} conversations; {len(classes)} divergence class(es), "
             f"{target['train']} vs {target['deploy']}:"]
    for i, k in enumerate(classes, 1):
        mark = " (known: in the baseline)" if any(k is x for x in known) else ""
        lines.append(f"  {i}. {k['severity']} {k['cause']} at {k['where'] or '-'}: {k['count']} conversation(s), "
                     f"first ids {first_ids(k, '->')}{mark}")
    lines += ["", f"lead class: {lead['severity']} {lead['cause']} — {lead['cause_summary']}",
              f"why: {lead.get('explanation') or ''}"]
    if lead.get("diff_text"):
        lines += ["", lead["diff_text"]]
    label = "minimal counterexample" if lead.get("shrunk") else "counterexample (as found, not shrunk)"
    lines += ["", f"{label}:", json.dumps(lead.get("counterexample"), indent=2, ensure_ascii=False, sort_keys=True)]
    return "\n".join(lines) + "\n"


def _testcase(parent: ET.Element, name: str, classname: str) -> ET.Element:
    return ET.SubElement(parent, "testcase", {"classname": xml_safe(classname), "name": xml_safe(name), "time": "0"})


def _child(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: xml_safe(v) for k, v in attrs.items()})
    if text is not None:
        el.text = xml_safe(text)
    return el


def _check_case(suite: ET.Element, target: dict[str, Any], check: dict[str, Any], strict: bool,
                new: set | None) -> str:
    """Add one check's testcase; return its outcome: ``passed``, ``failure`` or ``skipped``."""
    case = _testcase(suite, check["name"], suite_name(target))
    if check["verdict"] == "skipped":
        _child(case, "skipped", message=check.get("explanation") or "skipped")
        return "skipped"
    classes = check.get("classes") or []
    failing = [k for k in classes if k["severity"] == "error" or strict]
    known = [k for k in failing if new is not None and class_id(target, check, k) not in new]
    failing = [k for k in failing if not any(k is x for x in known)]
    if failing:
        lead = failing[0]
        _child(case, "failure", _body(target, check, lead, known), message=_headline(lead), type=lead["cause"])
        return "failure"
    if classes:
        _child(case, "system-out", _body(target, check, (known or classes)[0], known))
    return "passed"


def render_junit(report: dict[str, Any]) -> str:
    """The JUnit XML document for ``report`` (a ``build_report`` dict, with ``harness.inputs`` when the CLI ran)."""
    h = report["harness"]
    strict = bool((h.get("inputs") or {}).get("strict"))
    baseline = report.get("baseline")
    new = None if baseline is None else {ClassId.from_json(k) for k in baseline.get("new", [])}
    root = ET.Element("testsuites", {"name": SUITE, "time": "0"})
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for t in report["targets"]:
        suite = ET.SubElement(root, "testsuite", {"name": xml_safe(suite_name(t))})
        props = ET.SubElement(suite, "properties")
        for name, value in (("model", report.get("model", {}).get("name", "?")), ("seed", h.get("seed")),
                            ("examples", h.get("examples")), ("strict", strict), ("train", t["train"]),
                            ("deploy", t["deploy"]), ("verdict", t["verdict"])):
            _child(props, "property", name=name, value=str(value).lower() if isinstance(value, bool) else str(value))
        outcomes = []
        if t["verdict"] == "error":
            case = _testcase(suite, "run", suite_name(t))
            _child(case, "error", t.get("error") or "error", message=(t.get("error") or "error").split("\n")[0],
                   type="error")
            outcomes.append("error")
        outcomes += [_check_case(suite, t, c, strict, new) for c in t["checks"]]
        counts = {"tests": len(outcomes), "failures": outcomes.count("failure"), "errors": outcomes.count("error"),
                  "skipped": outcomes.count("skipped")}
        for key, value in counts.items():
            suite.set(key, str(value))
            if key in totals:
                totals[key] += value
        suite.set("time", "0")
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
