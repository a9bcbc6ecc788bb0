"""Where the real public sample data is: one rule for the tests, the benchmarks and the README's smoke runs.

The rule: the folder named by the `CERVIX_HF_SAMPLE_DATA` environment variable when it is set, otherwise
`shared/data` beside the repository (`../shared/data` from the repository root). It holds
`intel-mobileodt-sample/`, `iarc-colposcopy-atlas/` and `isbi2014-edf/` (see their README). Nothing is ever copied
from it into the repository.
"""

import os
from pathlib import Path

SAMPLE_DATA_ENV = "CERVIX_HF_SAMPLE_DATA"
SAMPLE_DATASETS = ("intel-mobileodt-sample", "iarc-colposcopy-atlas", "isbi2014-edf")


def sample_data_dir() -> Path:
    """The sample data folder by the rule above (it may not exist: check before use)."""
    if os.environ.get(SAMPLE_DATA_ENV):
        return Path(os.environ[SAMPLE_DATA_ENV]).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def missing_sample_data() -> list[Path]:
    """The sample data sets that are not where the rule says, as paths a user can check."""
    root = sample_data_dir()
    return [root / name for name in SAMPLE_DATASETS if not (root / name).is_dir()]
