"""The models, one self-contained folder each (configuration, modeling, image processing), as in transformers.

A folder imports only third-party libraries and its own files: `save_pretrained` copies it beside the weights, where
it runs as remote code without cervix_hf installed. What cervix_hf knows about each model lives outside the folders,
in its record in `cervix_hf.registry`.
"""
