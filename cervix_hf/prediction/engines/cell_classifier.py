"""The Pap-cell classifier's prediction engine: the 7 class probabilities, the normal/abnormal group sums and the
decision at a threshold, per cell image."""

from cervix_hf.prediction.engines.base import PredictionEngine, number
from cervix_hf.prediction.inference import classify_cell_batch, prepost_threshold


class CellClassifierEngine(PredictionEngine):
    """One row per cell image: `label`, `probability_<class>`, `probability_<group>`, `decision` and `threshold`
    (the operating point's, else the model's). A chunk runs as one batch."""

    def setup(self, threshold, operating_point) -> None:
        self.threshold, _ = prepost_threshold(self.model.config, operating_point, threshold)
        self.columns = [
            "image",
            "status",
            "label",
            *(f"probability_{name}" for name in self.labels),
            *(f"probability_{group}" for group in self.model.config.group_names),
            "decision",
            "threshold",
            "error",
        ]

    def predict(self, chunk) -> list[dict]:
        rows = {}
        ready = self.read_all(chunk, rows)
        if ready:
            answers = classify_cell_batch(self.model, self.processor, [image for _, image in ready], self.threshold)
            for (item, _), answer in zip(ready, answers):
                rows[item] = self.row(
                    item,
                    status="classified",
                    label=answer["label"],
                    decision=answer["decision"],
                    threshold=answer["threshold"],
                    **{f"probability_{name}": p for name, p in answer["probabilities"].items()},
                    **{f"probability_{group}": p for group, p in answer["groups"].items()},
                )
        return [rows[item] for item in chunk]

    @classmethod
    def is_complete(cls, row: dict) -> bool:
        probabilities = [column for column in row if column.startswith("probability_")]
        return (
            row.get("status") == "classified"
            and f"probability_{row.get('label')}" in probabilities
            and f"probability_{row.get('decision')}" in probabilities
            and all(number(row[column], 0, 1) for column in probabilities)
            and number(row.get("threshold"), 0, 1)
        )
