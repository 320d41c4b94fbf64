"""python -m evaluation: one checkpoint's box mAP three ways on one split.

(1) PyTorch: mmdet's ``inference_detector``; (2) the exported ONNX model in
process with ONNX Runtime; (3) the Triton ensemble through the client; (2) and
(3) for each export format asked for (fp32, and int8 served as its own model).
Each export is made (or reused when up to date) and one server started on free
ports. Prints a markdown table and writes a JSON file; every path is scored by
pycocotools against the same annotations.
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict

from tqdm import tqdm
from triton_frcnn.files import not_found

from detection import paths
from detection.coco import METRICS, CocoSplit
from ground import cli
from ground.results import write_report


def parse_args(argv=None) -> argparse.Namespace:
    p = cli.parser('evaluation', __doc__)
    p.add_argument('-c', '--config', type=Path, required=True)
    p.add_argument('-w', '--checkpoint', type=Path, required=True)
    p.add_argument('--ann', type=Path, required=True,
                   help='COCO annotation file, e.g. data/synthetic/annotations/val.json')
    p.add_argument('--images', type=Path, required=True, help='the images folder')
    p.add_argument('-m', '--name', default='faster_rcnn', help='served model name')
    p.add_argument('-f', '--formats', nargs='+', default=['onnxruntime'],
                   help='export formats to score (CPU: onnxruntime, '
                   'onnxruntime-int8, openvino)')
    p.add_argument('--calibration', type=Path, nargs='+', default=[],
                   help='int8: images or folders to calibrate on (not the '
                   'evaluated ones)')
    p.add_argument('-r', '--repository', type=Path,
                   default=paths.MODEL_REPOSITORY)
    p.add_argument('--limit', type=int, default=0,
                   help='first N images only (0: all)')
    p.add_argument('--concurrency', type=int, default=2)
    p.add_argument('--out', type=Path, default=paths.RESULTS / 'eval.json')
    args = p.parse_args(argv)
    if problem := not_found([args.config, args.checkpoint, args.ann,
                             args.images, *args.calibration]):
        p.error(problem)
    return args


def run_path(name: str, split: CocoSplit, detect, concurrency: int = 1) -> Dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool, tqdm(
            total=len(split.image_ids), desc=name, unit='img',
            file=sys.stderr) as bar:
        def one(image_id):
            result = detect(split.path(image_id))
            bar.update()
            return image_id, result
        detections = dict(pool.map(one, split.image_ids))
    return {'detections': detections,
            'seconds': round(time.perf_counter() - start, 1)}


def table(rows: Dict[str, Dict[str, float]], reference: str) -> str:
    lines = ['| path | ' + ' | '.join(METRICS) + ' | ΔAP vs ' + reference + ' |',
             '| --- ' * (len(METRICS) + 2) + '|']
    for name, stats in rows.items():
        delta = stats['AP'] - rows[reference]['AP']
        lines.append(f'| {name} | ' + ' | '.join(f'{stats[m]:.2f}' for m in METRICS)
                     + f' | {delta:+.2f} |')
    return '\n'.join(lines)


REFERENCE = 'pytorch (mmdet)'


def evaluate(args: argparse.Namespace) -> int:
    split = CocoSplit(args.ann, args.images, args.limit)
    runs, classes, exports = detect_every_way(args, split)
    stats = {name: split.evaluate(run['detections'], classes)
             for name, run in runs.items()}
    print(table(stats, REFERENCE))
    write_report(args.out, {
        'config': str(args.config), 'checkpoint': str(args.checkpoint),
        'annotations': str(args.ann), 'images': len(split.image_ids),
        'exports': {name: str(v) for name, v in exports.items()},
        'paths': {name: {**stats[name], 'seconds': runs[name]['seconds']}
                  for name in runs},
        'delta_ap_points': {name: round(stats[name]['AP'] - stats[REFERENCE]['AP'], 2)
                            for name in runs},
    })
    print(f'wrote {args.out}')
    return 0


def detect_every_way(args: argparse.Namespace, split: CocoSplit):
    """Each path's detections on the split: mmdet, then every format in
    process, then every format served; with the class names and the
    exported versions."""
    from export import model as detector_model
    from export.formats import FORMATS
    from export.parity import mmdet_detections
    from export.request import Accuracy, Export, Request
    from tools.stack import served
    from triton_frcnn.files import image_files

    from detection.runtime import for_version
    requests = [Request(
        Export(config=args.config, checkpoint=args.checkpoint, name=args.name,
               images=[split.path(i) for i in split.image_ids[:4]],
               repository=args.repository, format=fmt),
        accuracy=Accuracy(calibration=image_files(args.calibration),
                          accuracy_ann=args.ann, accuracy_images=args.images,
                          accuracy_limit=args.limit))
        for fmt in args.formats]
    with served(args.repository, requests) as stack:
        model, _ = detector_model.load(args.config, args.checkpoint)
        runs = {REFERENCE: run_path(
            'pytorch', split, lambda p: mmdet_detections(model, p))}
        for request in requests:
            fmt = FORMATS[request.export.format]
            name = f'{fmt.backend} {fmt.precision}'
            runs[name] = run_path(
                name, split, for_version(stack.exports[request.served_name]))
        for request in requests:
            name = f'triton {request.served_name}'
            with stack.detector(request.served_name) as detector:
                runs[name] = run_path(name, split, detector, args.concurrency)
    return runs, model.dataset_meta['classes'], stack.exports


main = cli.entry('eval', parse_args, evaluate)


if __name__ == '__main__':
    sys.exit(main())
