"""`python -m cervix_hf` is the `cervix-hf` command."""

import sys

from cervix_hf.cli import main

sys.exit(main())
