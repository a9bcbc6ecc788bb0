"""`python -m cervix_hf.app`: serve the app."""

from .main import main

main()
