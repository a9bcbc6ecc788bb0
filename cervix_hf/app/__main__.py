"""`python -m cervix_hf.app`: serve the app."""

from cervix_hf.app.main import main

main()
