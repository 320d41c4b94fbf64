"""ONNX Runtime session options, each measured in process on the bench images.

The server's backend and every other path use ONNX Runtime's defaults (all
cores, every graph optimisation); these variants show what the alternatives
change, in the same run.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import onnxruntime as ort

LEVELS = {'none': ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
          'basic': ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          'all': ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session_options(threads: int = 0, level: str = 'all',
                    save_to: Optional[Path] = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = LEVELS[level]
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    return options


def variants(model: Path, work: Path
             ) -> Dict[str, Tuple[Path, ort.SessionOptions]]:
    """Row name -> (model file, options). The saved optimised model is written here by
    ONNX Runtime itself (full optimisation, this CPU's layouts), then loaded
    with optimisation off, as a server would load a pre-optimised file."""
    saved = work / 'optimized.onnx'
    ort.InferenceSession(str(model), session_options(save_to=saved),
                         providers=['CPUExecutionProvider'])
    return {'threads=1': (model, session_options(threads=1)),
            'graph opt=basic': (model, session_options(level='basic')),
            'saved optimised model': (saved, session_options(level='none'))}


def load_seconds(model: Path, options: ort.SessionOptions) -> float:
    start = time.perf_counter()
    ort.InferenceSession(str(model), options, providers=['CPUExecutionProvider'])
    return round(time.perf_counter() - start, 2)
