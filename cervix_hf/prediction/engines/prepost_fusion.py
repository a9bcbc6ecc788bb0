"""The pre/post fusion model's prediction engine: the probability of Positive and the decision at a threshold, per
pair of images."""

from pathlib import Path

import torch

from cervix_hf.data import read_iarc_atlas, read_pairs_csv
from cervix_hf.prediction.engines.base import PredictionEngine, given, number
from cervix_hf.prediction.inference import load_model_input, prepost_threshold


class PrePostFusionEngine(PredictionEngine):
    """One row per (pre, post) pair: `label`, `probability` (of Positive) and `threshold` (the operating point's,
    else the model's). A chunk runs as one batch; the processor's post-processing decides."""

    def setup(self, threshold, operating_point) -> None:
        self.threshold, _ = prepost_threshold(self.model.config, operating_point, threshold)
        self.columns = ["pre", "post", "status", "label", "probability", "threshold", "error"]

    @torch.inference_mode()
    def predict(self, chunk) -> list[dict]:
        rows = {}
        ready = self.read_all(chunk, rows)
        if ready:
            features = self.processor(
                [pre for _, (pre, _) in ready], [post for _, (_, post) in ready], return_tensors="pt"
            ).to(self.device)
            decisions = self.processor.post_process_classification(self.model(**features), self.threshold)
            for (item, _), decision in zip(ready, decisions):
                rows[item] = self.row(
                    item,
                    status="classified",
                    label=decision["label"],
                    probability=decision["probability"],
                    threshold=decision["threshold"],
                )
        return [rows[item] for item in chunk]

    @classmethod
    def calibration_candidates(cls, data: Path) -> list:
        """The (pre, post) pairs of a pairs CSV or of the IARC atlas layout."""
        records = read_pairs_csv(data) if data.suffix.lower() == ".csv" else read_iarc_atlas(data)
        return [(record.pre_path, record.post_path) for record in records.records]

    @classmethod
    def calibration_item(cls, record, candidate, processor):
        """Both images of a pair, read as the model reads them."""
        return tuple(load_model_input(view, record.model_type) for view in candidate)

    @classmethod
    def is_complete(cls, row: dict) -> bool:
        return (
            row.get("status") == "classified"
            and given(row.get("label"))
            and number(row.get("probability"), 0, 1)
            and number(row.get("threshold"), 0, 1)
        )
