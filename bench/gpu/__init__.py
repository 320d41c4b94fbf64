"""The GPU sitting: everything that measures the GPU path in one unattended
run on a lent card (docs/gpu-sitting.md).

- ``sitting`` (``python -m bench.gpu``): the sitting itself;
- ``pack``: what the GPU host needs, made here (``make gpu-pack``);
- ``placement``: a repository exported here, placed on the card;
- ``ort_placement``: which nodes ONNX Runtime leaves to the CPU;
- ``report``: the targets, the ratios, performance-gpu.json and .md;
- ``wheels.txt``: the GPU host's pinned wheels.
"""
from .sitting import main  # noqa: F401 (what python -m bench.gpu runs)
