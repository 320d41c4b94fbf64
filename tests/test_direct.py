"""What a caller who skips the ensemble can cost: the detector and the
postprocess answer anyone who reaches the server, so their work and memory
are bounded by what the ensemble itself allows (docs/direct-requests.md)."""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from triton_frcnn.client import TritonDetector
from triton_frcnn.client.retry import Retry

from ground.engine import NATIVE
from ground.process import resident_mib, wait_until

from .conftest import ENGINE, SAMPLES

pytestmark = pytest.mark.native
HUGE = 3000  # a side far beyond the largest canvas the preprocessing makes
HUGE_MIB = 3 * HUGE * HUGE * 4 / 2**20  # one such tensor, float32
# what the server may keep once the requests below are answered: jemalloc
# returns freed pages within a second; the stand-in's detector also keeps
# its shared-memory pool at the largest execution it ran (up to
# max_batch_size requests), mapped into the server and its stub
# (docs/native-backends.md)
MARGIN_MIB = 64


def margin(executed_mib: float) -> float:
    return MARGIN_MIB + (0 if ENGINE.name == NATIVE else 2 * executed_mib)


def settled_mib(server, before: float, allowed: float) -> float:
    """The server's growth over ``before`` once it is within ``allowed``,
    or after 15 s."""
    wait_until(lambda: resident_mib(server.process.pid) - before <= allowed, 15)
    return resident_mib(server.process.pid) - before


def detector_request(client, height: int, width: int, batch: int = 1):
    inputs = [grpcclient.InferInput('input', [batch, 3, height, width], 'FP32'),
              grpcclient.InferInput('img_shape', [batch, 2], 'FP32')]
    inputs[0].set_data_from_numpy(np.zeros((batch, 3, height, width),
                                           np.float32))
    inputs[1].set_data_from_numpy(np.full((batch, 2), [height, width],
                                          np.float32))
    return client.infer('faster_rcnn_detector', inputs)


def test_a_huge_tensor_sent_to_the_detector_costs_a_canvas_and_is_given_back(
        grpc_url, server, stack):
    """A 3000x3000 tensor straight to the detector: answered with the
    detector's usual 100 rows (computed on the largest canvas the
    preprocessing makes, the graph's bound), the memory it took returned,
    the server ready and a photo's detections unchanged."""
    client = grpcclient.InferenceServerClient(grpc_url)
    with stack.detector() as det:
        before_detections = det(SAMPLES[0])
        detector_request(client, 256, 416)
        before = resident_mib(server.process.pid)
        answer = detector_request(client, HUGE, HUGE)
        assert answer.as_numpy('dets').shape == (1, 100, 5)
        assert answer.as_numpy('labels').shape == (1, 100)
        allowed = margin(HUGE_MIB)
        assert settled_mib(server, before, allowed) <= allowed
        assert server.is_ready()
        again = det(SAMPLES[0])
    np.testing.assert_array_equal(again.boxes, before_detections.boxes)
    np.testing.assert_array_equal(again.scores, before_detections.scores)


def test_a_burst_of_huge_direct_requests_loses_no_photo_in_flight(
        grpc_url, server, stack):
    """Eight callers each send the detector a 3000x3000 tensor while photos
    go through the ensemble: every photo gets its own detections, every
    direct request an answer or a refusal, and the memory comes back."""
    client = grpcclient.InferenceServerClient(grpc_url)
    with stack.detector() as det:
        reference = det(SAMPLES[0])
        before = resident_mib(server.process.pid)

        def direct(_):
            try:
                return detector_request(client, HUGE, HUGE).as_numpy(
                    'dets').shape
            except Exception as exc:  # a refusal must say why
                return str(exc)

        with ThreadPoolExecutor(12) as pool:
            directs = pool.map(direct, range(8))
            photos = list(pool.map(lambda _: det(SAMPLES[0]), range(8)))
        outcomes = list(directs)
        for photo in photos:
            np.testing.assert_array_equal(photo.boxes, reference.boxes)
        for outcome in outcomes:
            assert outcome == (1, 100, 5) or 'busy' in outcome.lower() \
                or 'exceeds' in outcome, outcome
        allowed = margin(8 * HUGE_MIB)  # the test export batches requests
        assert settled_mib(server, before, allowed) <= allowed
        assert server.is_ready()


def test_the_postprocess_takes_only_the_detectors_shapes(grpc_url, server):
    """Sent to the postprocess directly, a million rows of detections are
    refused by Triton's shape check before any code runs."""
    client = grpcclient.InferenceServerClient(grpc_url)
    shapes = {'dets': ([1, 1_000_000, 5], 'FP32'),
              'labels': ([1, 1_000_000], 'INT64'),
              'scale_factor': ([1, 2], 'FP32'), 'ori_shape': ([1, 2], 'FP32')}
    inputs = []
    for name, (shape, dtype) in shapes.items():
        tensor = grpcclient.InferInput(name, shape, dtype)
        tensor.set_data_from_numpy(np.zeros(shape, np.float32 if dtype ==
                                            'FP32' else np.int64))
        inputs.append(tensor)
    with pytest.raises(Exception, match=r"unexpected shape for input "
                       r"'(dets|labels)' .*Expected \[-1,100(,5)?\], got "
                       r"\[1,1000000"):
        client.infer('faster_rcnn_postprocess', inputs)
    assert server.is_ready()


@pytest.mark.slow
def test_the_way_in_caps_a_requests_bytes_and_a_clients_requests_in_flight(
        server, stack, tmp_path):
    """nginx with the ingress's limits in front of the server: a 108 MB
    tensor is refused before it reaches Triton, and of 24 direct requests
    at once from one address those past 16 in flight are answered 503
    (busy); photos sent meanwhile through the client all come back."""
    from tools.cluster.nginx import nginx
    if shutil.which('nginx') is None and not Path('/usr/sbin/nginx').exists():
        pytest.skip('nginx is not installed (scripts/setup.sh installs it as root)')
    with nginx([server], tmp_path) as (grpc_port, _):
        client = grpcclient.InferenceServerClient(f'127.0.0.1:{grpc_port}')
        with pytest.raises(Exception, match='413'):
            detector_request(client, HUGE, HUGE)

        def direct(_):
            try:
                detector_request(client, 2000, 2000)  # 48 MB: under the cap
                return 'answered'
            except Exception as exc:
                return 'busy' if '503' in str(exc) else str(exc)
        with stack.detector() as det, ThreadPoolExecutor(28) as pool:
            reference = det(SAMPLES[0])
            outcomes = pool.map(direct, range(24))
            through = TritonDetector(f'127.0.0.1:{grpc_port}', 'faster_rcnn',
                                     retry=Retry(retries=8))
            photos = list(pool.map(lambda _: through(SAMPLES[0]), range(4)))
            outcomes = list(outcomes)
        assert set(outcomes) <= {'answered', 'busy'}, outcomes
        # the ones past the limit while 16 were in flight, refused by nginx
        assert outcomes.count('busy') >= 1 and outcomes.count('answered') >= 1
        log = (tmp_path / 'nginx' / 'nginx-error.log').read_text()
        assert 'limiting connections by zone "per_client"' in log
        for photo in photos:
            np.testing.assert_array_equal(photo.boxes, reference.boxes)
    assert server.is_ready()
