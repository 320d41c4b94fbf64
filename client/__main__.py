"""python -m client, in this checkout: frcnn-detect from the client
distribution beside this file (``make setup`` installs it editable)."""
import sys

from triton_frcnn.client.cli import main

sys.exit(main())
