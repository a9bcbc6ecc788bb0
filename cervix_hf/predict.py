"""`python -m cervix_hf.predict`: the `cervix-hf predict` command (`cervix_hf.cli.predict`)."""

import sys

from cervix_hf.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
