"""``--shard i/n`` reports and ``harness merge``: shard counts in ``report.json``, merged into one run's report.

A shard report carries, per target and check, the raw counts of its slice (:class:`harness.runner.Sweep`) and
every divergence class in the order first seen, each rendered twice: shrunk (as a class among the largest
shows) and as found (past the cap). :func:`merge_shards` merges the slices in order with the runner's own
:func:`~harness.runner.merge_sweeps` and :func:`~harness.runner.ranked`, so the merged report is the one a
single run writes, byte for byte (shrinking is deterministic given a class's first failure, which the earliest
shard holding the class found)."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from harness.checks import CHECKS
from harness.errors import InputError
from harness.report.build import check_dict, class_dict
from harness.runner import (MAX_SHRUNK_CLASSES, Sweep, _Class, _skip_reason, _Tally, all_rejected, divergence_class,
                            merge_sweeps, ranked)


def shard_section(counted: Sequence[tuple[Sweep, dict]], piece: Callable[[int], str], *, index: int, count: int,
                  lo: int, hi: int, total: int) -> dict[str, Any]:
    """The ``shard`` key of a shard's report.json: which slice, and per target its raw counts and classes."""
    targets = []
    for sw, shrunk in counted:
        checks = []
        for t in sw.tallies:
            classes = []
            for key, c in t.classes.items():
                severity, cause, where, ids = key
                small = shrunk[(t.check.name, key)]
                classes.append({"key": [severity, cause, where, list(ids)], "count": c.count,
                                "record_count": c.record_count, "records": list(c.records), "source": c.source,
                                "shrunk": _text(class_dict(divergence_class(key, c, small), piece)),
                                "as_found": _text(class_dict(divergence_class(key, c, None), piece))})
            checks.append({"name": t.check.name, "run": t.run, "errors": t.errors, "warnings": t.warnings,
                           "rejected": t.rejected, "rejected_deploy": t.rejected_deploy, "skipped": t.skipped,
                           "not_applicable": [t.not_applicable, t.first_not_applicable], "classes": classes})
        targets.append({"n": sw.n, "rejected": sw.rejected, "first_reason": sw.first_reason, "checks": checks})
    return {"index": index, "count": count, "start": lo, "stop": hi, "total": total, "targets": targets}


def merge_shards(reports: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The report one run over every shard's conversations writes; ``reports`` are ``(path, report)``. Raises
    InputError for shards of different runs, a shard given twice or a missing one."""
    ordered = _validate(reports)
    first = ordered[0]
    targets = []
    for i, target in enumerate(first["targets"]):
        sw = merge_sweeps([_sweep(r["shard"]["targets"][i]) for r in ordered])
        targets.append(_target(target, sw))
    out = {k: v for k, v in first.items() if k not in ("shard", "targets")}
    out["targets"] = targets
    strict = bool(first["harness"].get("inputs", {}).get("strict"))
    bad = ("fail", "warn") if strict else ("fail",)
    errors = any(t["verdict"] == "error" for t in targets)
    failed = any(c["verdict"] in bad for t in targets for c in t["checks"])
    out["harness"] = {**first["harness"], "exit_status": 2 if errors else 1 if failed else 0}
    return out


def _sweep(raw: dict[str, Any]) -> Sweep:
    tallies = []
    for c in raw["checks"]:
        t = _Tally(CHECKS[c["name"]], c["run"], c["errors"], c["warnings"], c["rejected"], c["rejected_deploy"],
                   skipped=c["skipped"])
        t.not_applicable, t.first_not_applicable = c.get("not_applicable", (0, ""))
        for k in c["classes"]:
            severity, cause, where, ids = k["key"]
            shown = {"shrunk": json.loads(k["shrunk"]), "as_found": json.loads(k["as_found"])}
            t.classes[(severity, cause, where, tuple(ids))] = _Class(shown, k["source"], k["count"],
                                                                     k["record_count"], list(k["records"]))
        tallies.append(t)
    return Sweep(tallies, raw["n"], raw["rejected"], raw["first_reason"])


def _target(target: dict[str, Any], sw: Sweep) -> dict[str, Any]:
    out = {k: target[k] for k in ("train", "deploy", "renderers")}
    if sw.n and sw.rejected == sw.n:
        return {**out, "verdict": "error", "examples": sw.n, "error": all_rejected(target["train"], sw.n,
                                                                                  sw.first_reason), "checks": []}
    checks = []
    for t in sw.tallies:
        if t.run == 0:
            checks.append(check_dict(t.check.name, "skipped", 0, 0, 0, t.rejected, _skip_reason(t, sw.n), []))
            continue
        classes = []
        for rank, (key, c) in enumerate(ranked(t.classes)):
            d = {}  # in class_dict's key order (the Markdown renderer walks some dicts in order)
            for k, v in c.first["shrunk" if rank < MAX_SHRUNK_CLASSES else "as_found"].items():
                if k != "records":
                    d[k] = c.count if k == "count" else v
                if k == "counterexample_source" and c.record_count:
                    d["records"] = {"count": c.record_count, "first": list(c.records)}
            classes.append(d)
        checks.append(check_dict(t.check.name, t.verdict, t.run, t.errors, t.warnings, t.rejected, "", classes))
    verdict = "inconsistent" if any(c["verdict"] == "fail" for c in checks) else "consistent"
    return {**out, "verdict": verdict, "examples": sw.n, "error": None, "checks": checks}


def _text(d: dict[str, Any]) -> str:
    """A class dict as JSON text: report.json sorts keys, but the Markdown and HTML reports print some of its
    dicts (counterexample, tokens) in the order they were built."""
    return json.dumps(d, ensure_ascii=False)


def _validate(reports: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The shard reports in shard order, after proving they are the shards of one run, each exactly once."""
    for path, r in reports:
        if not isinstance(r, dict) or not isinstance(r.get("shard"), dict) or "harness" not in r:
            raise InputError(f"{path}: is not the report.json of a `harness check --shard I/N` run; merge only "
                             "shard reports")
    (path0, r0), by_index = reports[0], {}
    same = _identity(r0)
    for path, r in reports:
        mine = _identity(r)
        if mine != same:
            what = next(k for k in same if same[k] != mine.get(k))
            raise InputError(f"{path} and {path0} come from different runs ({what} differs: "
                             f"{_short(mine.get(what))} vs {_short(same[what])}); merge the shards of one `harness "
                             "check` command (same model, specs, seed, examples, options and files)")
        index = r["shard"]["index"]
        if index in by_index:
            raise InputError(f"{path} and {by_index[index][0]} are both shard {index}/{same['shard count']}; pass "
                             "each shard once")
        by_index[index] = (path, r)
    count = same["shard count"]
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise InputError(f"shard {missing[0]}/{count} is missing ({len(by_index)} of {count} given); pass every "
                         "shard's report.json")
    return [by_index[i][1] for i in range(1, count + 1)]


def _identity(r: dict[str, Any]) -> dict[str, Any]:
    """What every shard of one run shares."""
    harness = {k: v for k, v in r["harness"].items() if k not in ("exit_status", "inputs")}
    inputs = r["harness"].get("inputs") or {}
    return {**harness, **{k: v for k, v in inputs.items() if k != "sha256"},
            "model": r.get("model"), "data": r.get("data"),
            "targets": [(t.get("train"), t.get("deploy"), t.get("renderers")) for t in r.get("targets", [])],
            "shard count": r["shard"].get("count"), "conversations": r["shard"].get("total")}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
