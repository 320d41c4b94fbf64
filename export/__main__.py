"""python -m export: checkpoint + mmdet config -> verified Triton model."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from triton_frcnn.files import image_files, not_found

from detection import paths
from detection.preprocess import (DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS,
                                  parse_sizes)
from ground import cli

from .store import location


def _device(text: str) -> str:
    from .device import Device
    try:
        return str(Device.parse(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _canvas(text: str) -> tuple:
    try:
        return parse_sizes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _gpu_canvas(text: str) -> tuple:
    return () if text == 'none' else _canvas(text)


def parse_args(argv=None) -> argparse.Namespace:
    from .formats import FORMATS, table
    p = argparse.ArgumentParser(
        prog='python -m export', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='formats:\n' + table())
    p.add_argument('-c', '--config', type=Path, default=paths.R50_CONFIG,
                   help='mmdet model config (default: %(default)s)')
    p.add_argument('-w', '--checkpoint', type=Path, required=True,
                   help='mmdet checkpoint (.pth)')
    p.add_argument('-f', '--format', choices=sorted(FORMATS),
                   default='onnxruntime', help='export format')
    p.add_argument('-m', '--name', default='faster_rcnn',
                   help='model name (int8, fp16, tf32 and openvino are served '
                   'as <name>_int8... beside it); the detector '
                   'is written as <model>_detector (default: %(default)s)')
    p.add_argument('-r', '--repository', type=location,
                   default=paths.MODEL_REPOSITORY,
                   help='Triton model repository: a folder, or '
                   's3://[http(s)://][host:port/]bucket/prefix, credentials '
                   'from the AWS environment variables (default: %(default)s)')
    p.add_argument('--version', type=int, default=None,
                   help='version folder (default: the next free one)')
    p.add_argument('--images', type=Path, nargs='+', default=[paths.SAMPLES],
                   help='images or folders for the parity check')
    p.add_argument('--min-parity', type=float, default=0.95,
                   help='fraction of mmdet\'s top-100 detections ONNX must '
                   'reproduce on every image (default: %(default)s)')
    p.add_argument('--instances', type=int, default=1,
                   help='detector instances (default: %(default)s)')
    p.add_argument('--device', default='cpu', type=_device,
                   help='where the detector runs: cpu, cuda or cuda:N (GPU: '
                   'KIND_GPU on device N, CUDA execution provider, exact fp32 '
                   'with TF32 off, request batching on; parity runs there, '
                   'so the export host needs that GPU) (default: %(default)s)')
    p.add_argument('--cpus', type=int, default=None,
                   help='CPUs of the serving host, shared out between the '
                   'detector\'s and the pre/post models\' threads (default: '
                   'this host\'s, affinity and container quota applied)')
    p.add_argument('--gpu-canvas', type=_gpu_canvas, default=None,
                   help='shape buckets HxW[,HxW...] of the GPU placement '
                   '(configs/gpu.pbtxt), or none for mmdet\'s padding; judged '
                   'like --canvas where an annotated set is given (default: '
                   '--canvas, else the fewest buckets that hold every image; '
                   'on a failed gate, mmdet\'s padding)')
    p.add_argument('--gpu-cpus', type=int, default=None,
                   help='CPUs of a GPU pod, for the GPU placement written '
                   'beside the CPU one (configs/gpu.pbtxt: preprocessing '
                   'gets half of them as instances) (default: --cpus)')
    p.add_argument('--max-queue', type=int, default=64,
                   help='requests each model may queue; more are refused at '
                   'once as "server busy" (default: %(default)s)')
    p.add_argument('--queue-timeout', type=float, default=60.0,
                   dest='queue_timeout_s',
                   help='seconds a request may wait in a queue before it is '
                   'refused as busy (default: %(default)s)')
    p.add_argument('--batch-requests', action=argparse.BooleanOptionalAction,
                   default=None,
                   help='let the detector\'s batcher group separate requests '
                   '(default: on a GPU only; on a CPU a batch costs what its '
                   'images cost one by one, and every image waits for all)')
    p.add_argument('--trt-accelerator', choices=('FP32', 'FP16'),
                   help='add the TensorRT execution accelerator block to '
                   'the onnxruntime config (GPU hosts)')
    p.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                   help='served images with more pixels are refused (checked '
                   'on the header, before decoding; default: %(default)s)')
    p.add_argument('--max-image-bytes', type=int, default=DEFAULT_MAX_BYTES,
                   dest='max_bytes',
                   help='served encoded images larger than this are refused '
                   '(default: %(default)s)')
    p.add_argument('--canvas', type=_canvas, default=(),
                   help='shape buckets HxW[,HxW...]: pad each image to the '
                   'smallest that holds it (not only to a multiple of 32), '
                   'so that images of other sizes batch together and a GPU '
                   'meets few shapes; no longer exact, so judged by the mAP '
                   'gate (--accuracy-ann; fp32 allows 1.0 point). '
                   '800x1344,1344x800 holds every image at 1333x800')
    p.add_argument('--calibration', type=Path, nargs='+', default=[],
                   help='int8: images or folders to calibrate on (the first '
                   '64 are used)')
    p.add_argument('--accuracy-ann', type=Path,
                   help='int8, fp16, tf32, --canvas: COCO annotations of the mAP gate '
                   '(images not used for calibration)')
    p.add_argument('--accuracy-images', type=Path,
                   help='int8, fp16, tf32, --canvas: the folder of those images')
    p.add_argument('--accuracy-limit', type=int, default=0,
                   help='int8, fp16, tf32, --canvas: first N annotated images only '
                   '(0: all)')
    p.add_argument('--max-map-drop', type=float, default=None,
                   help='int8, fp16, tf32, --canvas: largest allowed AP drop '
                   'from the fp32 graph on mmdet\'s padding, in points '
                   '(default: the format\'s, fp32 and int8 1.0, fp16 and '
                   'tf32 0.3)')
    p.add_argument('-v', '--verbose', action='store_true')
    args = p.parse_args(argv)
    for flag in ('version', 'instances', 'cpus', 'gpu_cpus', 'max_queue'):
        if getattr(args, flag) is not None:
            cli.at_least(p, 1, f'--{flag.replace("_", "-")}', getattr(args, flag))
    if args.queue_timeout_s <= 0:
        p.error('--queue-timeout must be more than 0')
    given = [*args.images, *args.calibration, args.accuracy_ann,
             args.accuracy_images]
    if problem := not_found(given):
        p.error(problem)
    args.images, args.calibration = map(image_files, (args.images,
                                                       args.calibration))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def work() -> int:
        from .pipeline import run
        from .request import Accuracy, Export, Placement, Request, taken
        result = run(Request(taken(Export, args), taken(Placement, args),
                             taken(Accuracy, args)))
        print(f'export: wrote {result.version_dir}')
        return 0
    return cli.run('export', work, verbose=args.verbose)


if __name__ == '__main__':
    sys.exit(main())
