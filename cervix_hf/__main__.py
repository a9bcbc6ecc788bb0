"""`python -m cervix_hf` is the `cervix-hf` command."""

import sys

from .cli import main

sys.exit(main())
