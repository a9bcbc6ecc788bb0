"""Evaluation: metrics per task (`metrics`), the `eval_results.json` contract (`results`) and its plots (`plots`)."""
