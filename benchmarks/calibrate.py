"""Calibration table: every real chat template (TRL, axolotl, LLaMA-Factory exports, the zoo) paired with itself.

    python benchmarks/calibrate.py [--examples 100] [--seed 0] [--sources zoo,trl,axolotl,llamafactory]
                                   [--only REGEX] [--out docs/calibration.md]

Prints the Markdown table and writes it to docs/calibration.md (see harness/calibrate.py).
"""

from harness.calibrate import main

if __name__ == "__main__":
    raise SystemExit(main())
