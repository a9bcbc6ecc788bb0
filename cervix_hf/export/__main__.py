"""`python -m cervix_hf.export`: the `cervix-hf export` command (`cervix_hf.cli.export`)."""

import sys

from cervix_hf.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
