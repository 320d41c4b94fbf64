"""The in-process timing of python -m bench.engines, in a process of its
own whose ONNX Runtime is the one first on its path (NGC's 1.19.2):

    python -m bench.engines_child VERSION_DIR ROUNDS IMAGE...

prints two timings as JSON lines, with the ONNX Runtime that ran: with
ONNX Runtime's defaults, then with the session and run settings the
detector's config.pbtxt gives the served model (threads, arena shrinkage),
which is what serving adds its overhead to."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from detection.preprocess import Preprocessing
from detection.runtime import OnnxDetector, for_version

from .timing import timed

# the run option NGC's onnxruntime backend sets from a config (as the
# stand-in does: serve/backends/runtime.py, which imports only inside a stub)
RUN_OPTIONS = ('memory.enable_memory_arena_shrinkage',)


def main(argv=None) -> int:
    version, rounds, *images = argv if argv is not None else sys.argv[1:]
    import onnxruntime
    payloads = [Path(p).read_bytes() for p in images]
    runners = {'defaults': for_version(Path(version)),
               'as served': as_served(Path(version))}
    with tqdm(total=len(payloads) * int(rounds) * 2, unit='img',
              file=sys.stderr,
              desc=f'onnxruntime {onnxruntime.__version__}') as bar:
        rows = {name: timed(run, payloads, int(rounds), 1, bar)
                for name, run in runners.items()}
    print(json.dumps({name: {**row, 'version': onnxruntime.__version__}
                      for name, row in rows.items()}))
    return 0


def as_served(version: Path) -> OnnxDetector:
    """The graph with the session and run settings its config.pbtxt gives
    the served detector (as NGC's onnxruntime backend reads them)."""
    import onnxruntime as ort
    from export.triton_config import parse
    config = parse((version.parent / 'config.pbtxt').read_text())
    params = {k: v.string_value for k, v in config.parameters.items()}
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(params.get('intra_op_thread_count', 0))
    options.inter_op_num_threads = int(params.get('inter_op_thread_count', 0))
    run_options = ort.RunOptions()
    for key in RUN_OPTIONS:
        if key in params:
            run_options.add_run_config_entry(key, params[key])
    meta = json.loads((version / 'metadata.json').read_text())
    return OnnxDetector(version / 'model.onnx',
                        Preprocessing.from_dict(meta['preprocessing']),
                        options=options, run_options=run_options)


if __name__ == '__main__':
    sys.exit(main())
