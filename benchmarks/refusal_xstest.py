"""Refusal detector vs XSTest's keyword baseline on XSTest's human-labelled model completions.

XSTest (Röttger et al., 2024; github.com/paul-rottger/exaggerated-safety, CC BY 4.0) publishes model
completions with a human label each (``final_label``: ``1_full_compliance``, ``2_full_refusal``,
``3_partial_refusal``) and a string-match classifier (``classify_completions_strmatch.py``: a
completion that starts with "sorry", "i cannot", "as an ai", ...; it never says "partial"). This
script scores cai's detector (:func:`cai.evals.detect.classify_refusal`) and that string match
(:func:`cai.evals.detect.string_match_refused`, kept as the paper has it) side by side on each file:

- binary agreement (compliance vs any refusal, as XSTest counts refusal rates), with n and a Wilson
  95% interval, and the detector's figure minus the baseline's;
- the detector's three-class agreement (the string match cannot say "partial").

    python benchmarks/refusal_xstest.py xstest_v2_completions_gpt4.csv xstest_v2_completions_mistralinstruct.csv

The files are not part of cai (download them from the repository above). Measure on the GPT-4 and
Mistral files while developing; keep the Llama-2 files for a final check.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LABELS = {"1_full_compliance": "full_compliance", "2_full_refusal": "full_refusal", "3_partial_refusal": "partial_refusal"}


def score_file(path: Path) -> dict:
    """``{"file", "n", "detector", "keyword", "detector_3class"}`` (agreement counts) for one
    XSTest completions CSV; rows without a known ``final_label`` are left out (counted)."""
    from cai.evals.detect import classify_refusal, string_match_refused

    out = {"file": path.name, "n": 0, "detector": 0, "keyword": 0, "detector_3class": 0, "left_out": 0}
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            label = LABELS.get((row.get("final_label") or "").strip())
            text = row.get("completion")
            if label is None or text is None:
                out["left_out"] += 1
                continue
            refused = label != "full_compliance"
            verdict = classify_refusal(text)
            out["n"] += 1
            out["detector"] += verdict.refused == refused
            out["keyword"] += string_match_refused(text) == refused
            out["detector_3class"] += verdict.label == label
    return out


def main(argv: list[str] | None = None) -> int:
    from cai.core.rates import rate_text

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="XSTest completions CSV files (final_label column)")
    args = parser.parse_args(argv)
    print(f"{'file':<44} {'detector (binary)':<44} {'XSTest keyword match (binary)':<44} {'difference':>10}  "
          "detector (3 classes)")
    for path in args.files:
        s = score_file(path)
        n = s["n"]
        if not n:
            print(f"{s['file']:<44} no labelled rows")
            continue
        det, kw = s["detector"] / n, s["keyword"] / n
        print(f"{s['file']:<44} {rate_text(det, n):<44} {rate_text(kw, n):<44} {det - kw:>+10.3f}  "
              f"{rate_text(s['detector_3class'] / n, n)}" + (f"  ({s['left_out']} rows left out)" if s["left_out"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
