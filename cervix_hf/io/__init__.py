"""Image and result input/output: reading images within bounds (`images`), writing files whole (`files`), and
the rows of predictions as CSV or JSON Lines (`results`)."""
