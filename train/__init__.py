"""Training, evaluation and publishing scripts (`python -m train.<script> --help`)."""
