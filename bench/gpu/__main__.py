"""python -m bench.gpu: the GPU sitting (bench/gpu/sitting.py)."""
import sys

from . import main

sys.exit(main())
