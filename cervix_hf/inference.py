"""`cervix_hf.inference` is `cervix_hf.prediction.inference` (an alias, listed in ARCHITECTURE.md, for code written
against the earlier module path)."""

import sys

from cervix_hf.prediction import inference

sys.modules[__name__] = inference
