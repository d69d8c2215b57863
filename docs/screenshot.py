"""Regenerate docs/report.png: the HTML report of a differing pair, as headless Chromium shows it on load.

``make report-screenshot``. The pair is the planted newline bug (training ends user turns with an extra
newline) against plain ChatML served by vLLM, on the zoo's Qwen2.5 tokenizer. Needs Debian's chromium at
/usr/bin/chromium (or CHROMIUM=path) and the ``playwright`` package (its bundled browsers are never used).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(out: Path = ROOT / "docs" / "report.png") -> int:
    from playwright.sync_api import sync_playwright

    from harness.cli import main as harness

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(ROOT)  # spec paths as a user types them, relative
        code = harness(["check", "--model", "qwen2.5", "--train", "jinja:fixtures/planted/prompt_newline.jinja",
                        "--deploy", "hf:fixtures/templates/chatml.jinja", "--tools", "off", "--examples", "30",
                        "--checks", "prompt-prefix,system,answer-stop,stop-words", "--report-dir", tmp,
                        "--format", "json,html", "--quiet"])
        if code != 1:
            print(f"expected a differing pair (exit 1), got exit {code}", file=sys.stderr)
            return 1
        with sync_playwright() as p:
            chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((Path(tmp) / "report.html").as_uri(), wait_until="load")
            page.screenshot(path=str(out))
            browser.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "report.png"))
