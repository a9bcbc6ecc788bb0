"""ColpoNet's prediction engine: the quality gate's verdict and scores for every photo, the type probabilities for
those it classifies."""

import torch

from cervix_hf.io.images import ImageLoadError
from cervix_hf.prediction.engines.base import PredictionEngine, given, number
from cervix_hf.prediction.inference import passes_quality_gate, prepare_cervix_photo


class ColpoNetEngine(PredictionEngine):
    """One row per photo: `status` (classified, or rejected by the quality gate), the gate's scores and message, and
    `label` with `probability_<type>` when classified. A chunk's accepted photos run as one batch."""

    def setup(self, threshold, operating_point) -> None:
        self.columns = [
            "image",
            "status",
            "label",
            *(f"probability_{name}" for name in self.labels),
            "quality_acceptable",
            "laplacian_variance",
            "fft_score",
            "quality_message",
            "error",
        ]

    @torch.inference_mode()
    def predict(self, chunk) -> list[dict]:
        rows, ready = {}, []
        for item in chunk:
            try:
                prepared = prepare_cervix_photo(self.processor, self.load(item.paths[0]))
            except (ImageLoadError, OSError) as error:
                rows[item] = self.row(item, status="error", error=str(error))
                continue
            quality = prepared.quality
            gate = {
                "quality_acceptable": quality.is_acceptable,
                "laplacian_variance": quality.laplacian_variance,
                "fft_score": quality.fft_score,
                "quality_message": quality.message,
            }
            rows[item] = self.row(item, status="rejected by the quality gate", **gate)
            if passes_quality_gate(quality, self.ignore_quality_gate):
                ready.append((item, prepared))
        if ready:
            pixel_values = torch.cat([prepared.pixel_values for _, prepared in ready]).to(self.device)
            outputs = self.model(pixel_values=pixel_values)
            for (item, _), answer in zip(ready, self.processor.post_process_classification(outputs, self.model.config)):
                rows[item] |= {
                    "status": "classified",
                    "label": answer["label"],
                    **{f"probability_{name}": p for name, p in answer["probabilities"].items()},
                }
        return [rows[item] for item in chunk]

    @classmethod
    def is_complete(cls, row: dict) -> bool:
        probabilities = [column for column in row if column.startswith("probability_")]
        gate = (
            row.get("quality_acceptable") in (True, False, "True", "False")
            and number(row.get("laplacian_variance"))
            and number(row.get("fft_score"))
            and given(row.get("quality_message"))
        )
        if row.get("status") == "rejected by the quality gate":
            return gate
        return (
            row.get("status") == "classified"
            and gate
            and f"probability_{row.get('label')}" in probabilities
            and all(number(row[column], 0, 1) for column in probabilities)
        )
