"""The exported detector run in process: ONNX Runtime, or OpenVINO for an IR.

The parity check, the evaluation and the benchmark all go through
``Detector.detect`` (the served preprocessing, one batch, boxes back in
original pixels), so that they measure the same thing whatever the runtime.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort

from .postprocess import Detections, postprocess
from .preprocess import Preprocessing, batch, decode, prepare


class Detector:
    """Preprocessing and postprocessing around one runtime's ``infer``."""

    params: Preprocessing

    def infer(self, tensors: np.ndarray,
              img_shapes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``[B,3,H,W]`` float32 and ``[B,2]`` resized sizes ->
        ``dets [B,K,5]``, ``labels [B,K]`` in resized-image pixels."""
        raise NotImplementedError

    def detect(self, images: Sequence[Union[bytes, np.ndarray]],
               score_thr: float = 0.0) -> list:
        """Encoded bytes or decoded BGR arrays, all padded to one size, run as
        one batch."""
        decoded = [decode(i, self.params.max_pixels, self.params.max_bytes)
                   if isinstance(i, bytes)
                   else i for i in images]
        prepared = [prepare(image, self.params) for image in decoded]
        inputs = batch(prepared)
        dets, labels = self.infer(inputs['input'], inputs['img_shape'])
        return [postprocess(d, l, p.scale_factor, p.ori_shape, score_thr)
                for d, l, p in zip(dets, labels, prepared)]

    def __call__(self, image: Union[str, Path, bytes],
                 score_thr: float = 0.0) -> Detections:
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        return self.detect([data], score_thr)[0]


class OnnxDetector(Detector):

    def __init__(self, model_path: Union[str, Path],
                 params: Preprocessing = Preprocessing(),
                 providers: Sequence = ('CPUExecutionProvider',),
                 options: Optional[ort.SessionOptions] = None,
                 run_options: Optional[ort.RunOptions] = None):
        """``options``: ONNX Runtime's defaults (all cores, every graph
        optimisation) unless given; ``make bench`` measures the others;
        ``run_options``: those of every run (a served config's)."""
        if any('CUDA' in str(p) for p in providers) and hasattr(ort, 'preload_dlls'):
            ort.preload_dlls()  # CUDA and cuDNN from pip's nvidia-* packages
        self.session = ort.InferenceSession(
            str(model_path), options or ort.SessionOptions(),
            providers=list(providers))
        self.params = params
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.run_options = run_options

    def infer(self, tensors, img_shapes):
        dets, labels = self.session.run(
            self.output_names, dict(zip(self.input_names, (tensors, img_shapes))),
            self.run_options)
        return dets, labels


class OpenVinoDetector(Detector):

    def __init__(self, model_path: Union[str, Path],
                 params: Preprocessing = Preprocessing(),
                 properties: Optional[Dict[str, str]] = None):
        """``properties``: OpenVINO CPU plugin settings, as the export's
        deploy config gives them (the precision hint above all: without
        ``f32`` a CPU with native bf16 would silently run bf16)."""
        import openvino as ov
        self.compiled = ov.Core().compile_model(str(model_path), 'CPU',
                                                dict(properties or {}))
        self.params = params
        self.input_names = [p.any_name for p in self.compiled.inputs]
        self.output_names = [p.any_name for p in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()

    def infer(self, tensors, img_shapes):
        results = self.request.infer(
            dict(zip(self.input_names, (tensors, img_shapes))))
        by_name = {port.any_name: value for port, value in results.items()}
        return tuple(by_name[name] for name in self.output_names)


def runner(model_path: Union[str, Path], params: Preprocessing,
           openvino: Optional[Dict[str, str]] = None,
           providers: Sequence = ('CPUExecutionProvider',)) -> Detector:
    """The runtime that serves this file: an OpenVINO IR (``.xml``) or an
    ONNX graph on ``providers``."""
    if Path(model_path).suffix == '.xml':
        return OpenVinoDetector(model_path, params, openvino)
    return OnnxDetector(model_path, params, providers)


def for_version(version_dir: Path,
                providers: Sequence = ('CPUExecutionProvider',)) -> Detector:
    """The runner of an exported version folder, set up as it is served
    (an ONNX graph on ``providers``)."""
    meta = json.loads((Path(version_dir) / 'metadata.json').read_text())
    return runner(Path(version_dir) / meta.get('file', 'model.onnx'),
                  Preprocessing.from_dict(meta['preprocessing']),
                  meta.get('openvino'), providers)
