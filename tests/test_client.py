"""The thin client: what it accepts, what it learns from the server, its
asyncio API, and the server's answers to requests it should refuse."""
from __future__ import annotations

import asyncio
import io

import cv2
import numpy as np
import pytest
from PIL import Image
from triton_frcnn import wire
from triton_frcnn.client import (AsyncTritonDetector, ServerUnavailable,
                                 TritonDetector)
from triton_frcnn.client.protocol import ModelSpec

from .conftest import SAMPLES, photo_like, png, raw_request


@pytest.fixture(scope='module')
def det(grpc_url):
    with TritonDetector(grpc_url, 'faster_rcnn', wait=60) as d:
        yield d


def assert_same(a: wire.Detections, b: wire.Detections) -> None:
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert list(a.names) == list(b.names)


def test_a_bgr_array_gets_what_its_file_gets(det, tmp_path):
    """Arrays as inference_detector takes them (BGR uint8; grey too) are
    sent losslessly: the same pixels, the same detections."""
    image = photo_like(301, 233, 7)
    path = tmp_path / 'photo.png'
    cv2.imwrite(str(path), image)
    assert_same(det(image), det(path))
    assert_same(det(path.read_bytes()), det(path))
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / 'grey.png'), grey)
    assert_same(det(grey), det(tmp_path / 'grey.png'))
    with pytest.raises(ValueError, match='uint8 HxW, HxWx3'):
        det(image.astype(np.float32))


def test_the_spec_is_learned_from_metadata_and_config(det):
    assert det.spec == ModelSpec('faster_rcnn', '', 'IMAGE', 8)


def test_a_model_version_is_asked_for_and_checked(grpc_url, det):
    with TritonDetector(grpc_url, 'faster_rcnn', model_version='1') as pinned:
        assert pinned.spec.version == '1'
        assert_same(pinned(SAMPLES[0]), det(SAMPLES[0]))
    with pytest.raises(ServerUnavailable,
                       match="model 'faster_rcnn' version 7 not ready"):
        TritonDetector(grpc_url, 'faster_rcnn', model_version=7, wait=0.5)


def test_a_model_that_is_not_a_detection_ensemble_is_refused(grpc_url):
    with pytest.raises(ServerUnavailable, match=(
            "model 'faster_rcnn_detector' is not a detection ensemble: "
            r"inputs \{'input': 'FP32', 'img_shape': 'FP32'\}")):
        TritonDetector(grpc_url, 'faster_rcnn_detector')


def test_spec_learning_reads_http_shapes_and_unbatched_models():
    metadata = {'inputs': [{'name': 'JPEG', 'datatype': 'BYTES'}],
                'outputs': [{'name': t.name, 'datatype': t.datatype}
                            for t in wire.OUTPUTS]}
    spec = ModelSpec.learn('m', '', metadata, {'max_batch_size': 0})
    assert (spec.input, spec.batch_index) == ('JPEG', None)
    metadata['outputs'][2]['datatype'] = 'INT32'
    with pytest.raises(ServerUnavailable, match=r'CLASSES \(INT32, expected INT64\)'):
        ModelSpec.learn('m', '', metadata, {'config': {'max_batch_size': 8}})


@pytest.mark.slow
def test_asyncio_many_images_equal_one_at_a_time(grpc_url, det, unseen_images):
    images = [*SAMPLES, *unseen_images]

    async def many():
        async with await AsyncTritonDetector.connect(grpc_url) as adet:
            return await adet.detect_many(images, concurrency=4)
    for path, result in zip(images, asyncio.run(many())):
        assert_same(result, det(path))


def test_a_batch_of_two_sizes_gets_its_own_message(grpc_url, server):
    with pytest.raises(Exception, match='bad request: mixed-size batch: its '
                       'images pad to .*send images of other sizes as '
                       'separate requests'):
        raw_request(grpc_url, [png(photo_like(300, 200, 1)),
                               png(photo_like(200, 300, 2))])
    same = raw_request(grpc_url, [png(photo_like(300, 200, 1)),
                                  png(photo_like(301, 201, 2))])
    assert same.as_numpy('NUM_DETECTIONS').shape == (2, 1)
    assert server.is_ready()


def test_an_empty_batch_is_refused_by_name(grpc_url, onnx_detector):
    """Triton refuses a request of zero images itself, before the ensemble
    runs; in process, the preprocessing says so in its own words."""
    with pytest.raises(Exception, match=r"INVALID_ARGUMENT.*expected 1 string "
                       r"elements for inference input 'IMAGE'.*got 0"):
        raw_request(grpc_url, [])
    from detection.preprocess import BatchError
    with pytest.raises(BatchError, match='empty batch: the request holds no '
                       'images'):
        onnx_detector.detect([])


def test_a_thin_image_is_a_bad_image_not_an_opencv_assertion(det, onnx_detector):
    thin = png(np.full((4000, 1, 3), 128, np.uint8))
    with pytest.raises(Exception, match=r'bad image: image of 1x4000 pixels '
                       r'is too thin: fitted to 416x256 it would be 0x416'):
        det.infer_bytes(thin)
    from detection.preprocess import ImageError
    with pytest.raises(ImageError, match='too thin'):
        onnx_detector(thin)
    narrow = det(png(photo_like(3, 400, 9)))  # 3 px wide: served
    assert narrow.boxes.shape[1] == 4 and (narrow.boxes[:, [0, 2]] <= 3).all()


@pytest.mark.parametrize('fmt', ['JPEG', 'PNG'])
def test_truncated_images_are_refused_at_every_cut(det, fmt):
    buffer = io.BytesIO()
    Image.fromarray(photo_like(221, 163, 5)[..., ::-1]).save(buffer, fmt)
    data = buffer.getvalue()
    for fraction in (0.2, 0.5, 0.9, 0.99):
        with pytest.raises(Exception, match=(
                f'bad image: {fmt} of 221x163 pixels whose pixel data is '
                'truncated or corrupt')):
            det.infer_bytes(data[:int(len(data) * fraction)])
    assert len(det.infer_bytes(data)) > 0


def test_wire_pack_and_unpack_are_inverse():
    found = [wire.Detections(np.float32([[1, 2, 3, 4], [5, 6, 7, 8]]),
                             np.float32([0.9, 0.5]), np.int64([1, 0])),
             wire.Detections(np.zeros((0, 4), np.float32),
                             np.zeros(0, np.float32), np.zeros(0, np.int64))]
    packed = wire.pack(found, [b'cat', b'dog'])
    assert packed['BOXES'].shape == (2, 2, 4)
    first, second = wire.unpack(packed, 0), wire.unpack(packed, 1)
    np.testing.assert_array_equal(first.boxes, found[0].boxes)
    assert list(first.names) == ['dog', 'cat'] and len(second) == 0
