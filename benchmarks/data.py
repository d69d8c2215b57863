"""Memory and speed of ``harness check --data``: records are streamed, never the whole file in memory.

Writes synthetic training files of N records (default 100,000; every 7th answer starts with "\\n", a
boundary-merge warning on ChatML), then, each in its own process: reads them (JSONL line by line, a JSON
array through ijson) and sweeps one through ``harness check`` (ChatML trained and served, Qwen2.5 from the
zoo). Prints a table: records, seconds, records/s, peak RSS (and RSS before reading, after the imports).

    python benchmarks/data.py [--records 100000] [--sweep-checks prompt-prefix]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHATML = str(ROOT / "fixtures/templates/chatml.jinja")
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def _text(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n))


def write_files(directory: Path, n: int) -> dict[str, Path]:
    """``sharegpt.jsonl`` and ``sharegpt.json`` (one array) with the same ``n`` records."""
    jsonl, array = directory / "sharegpt.jsonl", directory / "sharegpt.json"
    with jsonl.open("w") as fl, array.open("w") as fa:
        fa.write("[\n")
        for i in range(n):
            answer = ("\n" if i % 7 == 0 else "") + _text(i, 12 + i % 20)
            rec = {"conversations": [{"from": "human", "value": _text(i, 8 + i % 9)}, {"from": "gpt", "value": answer},
                                     {"from": "human", "value": _text(i + 1, 5)}, {"from": "gpt", "value": _text(i, 9)}],
                   "system": "You are terse." if i % 3 == 0 else ""}
            line = json.dumps(rec, ensure_ascii=False)
            fl.write(line + "\n")
            fa.write(line + (",\n" if i < n - 1 else "\n"))
        fa.write("]\n")
    return {"jsonl": jsonl, "json": array}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, path: str, checks: str) -> None:
    """Run one scenario; print ``{"records", "seconds", "rss_before", "rss_peak"}`` as JSON."""
    if kind == "read":
        from harness.data import open_data, scan

        before = _rss_mib()
        t0 = time.perf_counter()
        source = open_data(Path(path))
        found = scan(source)
        n = sum(1 for _ in source.conversations())
        assert n == found.records - found.skipped
    else:
        from harness.cli import main

        import harness.api  # noqa: F401 - imports before the baseline
        import harness.generate  # noqa: F401
        before = _rss_mib()
        t0 = time.perf_counter()
        out = tempfile.mkdtemp()
        code = main(["check", "--model", "qwen2.5", "--train", "jinja:" + CHATML, "--deploy", "hf:" + CHATML,
                     "--data", path, "--checks", checks, "--report-dir", out, "--quiet"])
        assert code in (0, 1), code
        report = json.loads((Path(out) / "report.json").read_text())
        n = report["targets"][0]["examples"]
    print(json.dumps({"records": n, "seconds": time.perf_counter() - t0, "rss_before": before,
                      "rss_peak": _rss_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--sweep-checks", default="prompt-prefix,answer-stop,stop-words",
                        help="checks of the sweep scenario (default prompt-prefix,answer-stop,stop-words)")
    parser.add_argument("--no-sweep", action="store_true", help="only the reading scenarios")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), args.records)
        rows = [("read JSONL", "read", files["jsonl"]), ("read JSON array", "read", files["json"])]
        if not args.no_sweep:
            rows.append((f"sweep JSONL ({args.sweep_checks})", "sweep", files["jsonl"]))
        print(f"{'scenario':<58} {'file MiB':>8} {'records':>8} {'seconds':>8} {'rec/s':>8} {'RSS start':>10} "
              f"{'RSS peak':>9}")
        for label, kind, path in rows:
            done = subprocess.run([sys.executable, __file__, "--child", kind, str(path), args.sweep_checks],
                                  capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{label:<58} {path.stat().st_size / 2**20:>8.1f} {r['records']:>8} {r['seconds']:>8.1f} "
                  f"{r['records'] / r['seconds']:>8.0f} {r['rss_before']:>8.0f}Mi {r['rss_peak']:>7.0f}Mi")


if __name__ == "__main__":
    main()
