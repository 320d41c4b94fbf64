"""The exported detector run in process with ONNX Runtime.

The parity check, the evaluation and the server's ``onnxruntime`` backend all
go through ``OnnxDetector.infer`` so that they measure the same thing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort

from .postprocess import Detections, postprocess
from .preprocess import Preprocessing, batch, decode, prepare


class OnnxDetector:

    def __init__(self, model_path: Union[str, Path],
                 params: Preprocessing = Preprocessing(),
                 providers: Sequence[str] = ('CPUExecutionProvider',),
                 options: Optional[ort.SessionOptions] = None):
        """``options``: ONNX Runtime's defaults (all cores, every graph
        optimisation) unless given; ``make bench`` measures the others."""
        self.session = ort.InferenceSession(
            str(model_path), options or ort.SessionOptions(),
            providers=list(providers))
        self.params = params
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def infer(self, tensors: np.ndarray,
              img_shapes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``[B,3,H,W]`` float32 and ``[B,2]`` resized sizes ->
        ``dets [B,K,5]``, ``labels [B,K]`` in resized-image pixels."""
        dets, labels = self.session.run(
            self.output_names, dict(zip(self.input_names, (tensors, img_shapes))))
        return dets, labels

    def detect(self, images: Sequence[Union[bytes, np.ndarray]],
               score_thr: float = 0.0) -> list:
        """Encoded bytes or decoded BGR arrays, all padded to one size, run as
        one batch."""
        decoded = [decode(i, self.params.max_pixels, self.params.max_bytes)
                   if isinstance(i, bytes)
                   else i for i in images]
        prepared = [prepare(image, self.params) for image in decoded]
        dets, labels = self.infer(*batch(prepared))
        return [postprocess(d, l, p.scale_factor, p.ori_shape, score_thr)
                for d, l, p in zip(dets, labels, prepared)]

    def __call__(self, image: Union[str, Path, bytes],
                 score_thr: float = 0.0) -> Detections:
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        return self.detect([data], score_thr)[0]
