"""Each model's prediction engine (`PredictionEngine`), named by its record (`ModelFamily.engine_ref`)."""
