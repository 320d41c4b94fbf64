"""The traced ONNX graph -> OpenVINO IR (model.xml + model.bin).

OpenVINO's own converter reads the graph traced for ONNX Runtime: standard
ops and the project's exact rewrites, where mmdeploy's OpenVINO backend would
swap RoIAlign and NMS for OpenVINO-only ops with other semantics. Weights stay
fp32 (``save_model`` would halve them to fp16 by default); the precision the
CPU computes in is a compile-time hint that the deploy config sets.
"""
from __future__ import annotations

from pathlib import Path


def convert(onnx_path: Path, out_dir: Path) -> Path:
    import openvino as ov
    out_dir.mkdir(parents=True, exist_ok=True)
    xml = out_dir / 'model.xml'
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml),
                  compress_to_fp16=False)
    return xml
