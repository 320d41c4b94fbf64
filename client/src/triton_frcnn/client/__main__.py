"""python -m triton_frcnn.client: the same as frcnn-detect."""
import sys

from .cli import main

sys.exit(main())
