"""ONNX export and runtime, for every model: the classifiers' graphs (`classifiers`) and the detector's learned
layers inside its torchvision pipeline (`detector`), each fp32 or int8, run by ONNX Runtime or OpenVINO.

`python -m cervix_hf.export` is the `cervix-hf export` command."""
