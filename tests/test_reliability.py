"""Bad input, load and faults: nothing lost, the server stays up."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image

from serve.server import TritonServer
from tools.soak import soak
from triton_frcnn.client import TritonDetector

from .conftest import ROOT, SAMPLES, copy_models, photo_like


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def bad_inputs() -> dict:
    rgb = Image.fromarray(photo_like(221, 163, 5)[..., ::-1])
    jpeg = encoded(rgb, 'JPEG')
    frames = [Image.fromarray(photo_like(120, 90, s)[..., ::-1]) for s in (1, 2)]
    gif = io.BytesIO()
    frames[0].save(gif, 'GIF', save_all=True, append_images=frames[1:])
    deep = cv2.imencode('.png', photo_like(150, 110, 6).astype(np.uint16) * 257)[1]
    return {
        # must be refused, with the problem named
        'empty': (b'', 'empty image payload'),
        'random bytes': (np.random.default_rng(0).bytes(5000), 'not a decodable'),
        'truncated jpeg': (jpeg[:len(jpeg) // 3], 'truncated or corrupt'),
        'text named .jpg': (b'hello, I am not a picture\n' * 20, 'not a decodable'),
        'bomb': (encoded(Image.new('L', (12000, 8000)), 'PNG'), 'over the limit'),
        # must be served
        '1x1': (encoded(Image.new('RGB', (1, 1), 'red'), 'PNG'), None),
        '16-bit png': (deep.tobytes(), None),
        'cmyk jpeg': (encoded(rgb.convert('CMYK'), 'JPEG'), None),
        'palette png': (encoded(rgb.convert('P'), 'PNG'), None),
        'alpha png': (encoded(rgb.convert('RGBA'), 'PNG'), None),
        'animated gif': (gif.getvalue(), None),
        'trailing garbage': (jpeg + b'\x00garbage' * 100, None),
    }


@pytest.mark.native
@pytest.mark.slow
def test_every_bad_input_gets_a_result_or_a_clear_error_while_good_ones_flow(
        grpc_url, server, onnx_detector):
    good = SAMPLES[0].read_bytes()
    with TritonDetector(grpc_url, 'faster_rcnn') as det:
        reference = det.infer_bytes(good)
        cases = bad_inputs()

        def send(item):
            name, (payload, expected_error) = item
            try:
                return name, det.infer_bytes(payload), None
            except Exception as exc:
                return name, None, str(exc)

        jobs = list(cases.items()) + [('good', (good, None))] * 6
        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(send, jobs))
        for name, result, error in outcomes:
            expected_error = dict(jobs)[name][1]
            if name == 'good':
                assert error is None, error
                np.testing.assert_array_equal(result.boxes, reference.boxes)
            elif expected_error is not None:
                assert error is not None and expected_error in error, (name, error)
                assert 'bad image' in error
            elif error is not None:  # refused: it must say what is wrong
                assert 'bad image: ' in error, (name, error)
            else:  # served: exactly what ONNX Runtime gives in process
                local = onnx_detector(dict(jobs)[name][0])
                np.testing.assert_allclose(result.boxes, local.boxes, atol=0.5)
        served = {n for n, r, e in outcomes if r is not None}
        assert {'1x1', '16-bit png', 'cmyk jpeg', 'palette png', 'alpha png',
                'trailing garbage'} <= served
    assert server.is_ready()


@pytest.mark.native
def test_wrong_tensors_sent_to_the_detector_are_refused(grpc_url, server):
    client = grpcclient.InferenceServerClient(grpc_url)

    def call(array, shape_array):
        inputs = [grpcclient.InferInput('input', list(array.shape),
                                        'FP32' if array.dtype == np.float32 else 'INT32'),
                  grpcclient.InferInput('img_shape', list(shape_array.shape), 'FP32')]
        inputs[0].set_data_from_numpy(array)
        inputs[1].set_data_from_numpy(shape_array)
        return client.infer('faster_rcnn_detector', inputs)

    shape = np.array([[64, 64]], np.float32)
    with pytest.raises(Exception, match='(?i)data.?type|INT32'):
        call(np.zeros((1, 3, 64, 64), np.int32), shape)
    with pytest.raises(Exception, match='(?i)shape|dims'):
        call(np.zeros((1, 2, 64, 64), np.float32), shape)
    with pytest.raises(Exception, match='(?i)batch|shape'):
        call(np.zeros((2, 3, 64, 64), np.float32), shape)
    assert server.is_ready()
    fine = call(np.zeros((1, 3, 64, 64), np.float32), shape)
    assert fine.as_numpy('dets').shape == (1, 100, 5)


@pytest.mark.slow
def test_small_soak_loses_nothing(grpc_url, server, tmp_path):
    paths = []
    for i in range(4):
        path = tmp_path / f'soak_{i}.jpg'
        Image.fromarray(photo_like(300 + 7 * i, 220, 300 + i)).save(path)
        paths.append(path)
    with TritonDetector(grpc_url, 'demo') as det:
        report = soak(det, paths, requests=48, concurrency=8)
    assert (report.sent, report.succeeded) == (48, 48), report
    assert report.failed == 0 and report.mismatched == 0, report
    assert server.is_ready()


@pytest.mark.parametrize('args,code,line', [
    (['/nonexistent.jpg'], 2,
     'python -m tools.soak: error: no such file or folder: /nonexistent.jpg'),
    (['tests'], 2, 'python -m tools.soak: error: no images in tests'),
    ([str(SAMPLES[0]), '--concurrency', '0'], 2,
     'python -m tools.soak: error: --requests and --concurrency must be 1 or more'),
    ([str(SAMPLES[0]), '--start', '/nonexistent'], 1,
     'soak: error: model repository not found: /nonexistent (run `make export` first)'),
])
def test_soak_refuses_what_it_cannot_run_in_one_line(args, code, line):
    done = subprocess.run([sys.executable, '-m', 'tools.soak', *args],
                          capture_output=True, text=True, cwd=ROOT)
    assert (done.returncode, done.stderr.splitlines()[-1]) == (code, line)
    assert 'Traceback' not in done.stderr and done.stdout == ''


@pytest.mark.slow
def test_a_terminated_soak_stops_the_server_it_started(exported, tmp_path):
    """SIGTERM (a CI timeout, a container stop) unwinds like Ctrl-C: the
    tool's own server and its Python stubs go with it, not left holding
    ports; the requests not yet sent are dropped, not awaited."""
    import psutil
    request, _ = exported
    repo = copy_models(request.export.repository, tmp_path / 'repo', 'faster_rcnn')
    soak = subprocess.Popen(
        [sys.executable, '-m', 'tools.soak', '--start', str(repo),
         str(SAMPLES[0]), '--requests', '100000', '--concurrency', '2'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

    def serving() -> list:
        return [p for p in psutil.process_iter(['cmdline'])
                if str(repo) in ' '.join(p.info['cmdline'] or [])]
    try:
        wait_for(lambda: any('tritonserver' in ' '.join(p.info['cmdline'])
                             for p in serving()), timeout=120)
        wait_for(lambda: len(serving()) > 3, timeout=120)  # stubs too
        time.sleep(3)  # past start-up: the soak's requests are flowing
        assert soak.poll() is None, soak.communicate()
        soak.terminate()
        _, err = soak.communicate(timeout=60)
    finally:
        soak.kill()
    assert (soak.returncode, err.splitlines()[-1]) == (130, 'soak: interrupted')
    assert serving() == []


@pytest.mark.native
@pytest.mark.slow
def test_a_soak_on_a_server_that_stops_answering_ends_on_sigterm_with_its_report(
        second_server, tmp_path):
    """The server is frozen (SIGSTOP) while the soak's requests are in
    flight, so they hang; SIGTERM still ends the soak within 10 s, exit 130,
    with the counts so far written."""
    import os
    import signal
    second_server.start()
    out = tmp_path / 'soak.json'
    soak = subprocess.Popen(
        [sys.executable, '-m', 'tools.soak', '-u',
         f'127.0.0.1:{second_server.grpc_port}', str(SAMPLES[0]),
         '--requests', '100000', '--concurrency', '2', '--out', str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    group = os.getpgid(second_server.process.pid)
    try:
        time.sleep(8)  # connected, the expected results taken, flowing
        assert soak.poll() is None, soak.communicate()
        os.killpg(group, signal.SIGSTOP)
        time.sleep(1)
        soak.terminate()
        _, err = soak.communicate(timeout=10)
    finally:
        soak.kill()
        os.killpg(group, signal.SIGCONT)
    assert (soak.returncode, err.splitlines()[-1]) == (130, 'soak: interrupted')
    report = json.loads(out.read_text())
    assert report['interrupted'] is True and report['sent'] > 0
    assert report['failed'] == report['mismatched'] == 0


def test_model_load_and_unload_are_refused_over_the_api(grpc_url, http_url):
    """Without the admin key, as the Kubernetes Deployment runs it: the
    unload is refused over gRPC and HTTP and the model stays ready."""
    import tritonclient.http as httpclient
    client = grpcclient.InferenceServerClient(grpc_url)
    with pytest.raises(Exception, match='restricted'):
        client.unload_model('faster_rcnn')
    with pytest.raises(Exception, match='restricted'):
        client.load_model('faster_rcnn')
    with pytest.raises(Exception, match='restricted'):
        httpclient.InferenceServerClient(http_url).unload_model('faster_rcnn')
    with pytest.raises(Exception, match='restricted'):
        client.get_model_repository_index()
    assert client.is_model_ready('faster_rcnn')


@pytest.mark.native
@pytest.mark.slow
def test_a_server_that_wants_a_key_is_one_line_without_it(exported_demo,
                                                          exported, tmp_path):
    """A server restricting inference and metadata (API-key auth with
    Triton's own flags): the client without the header is refused in one
    line, exit 2; with ``-H`` (the name the server was given) it detects."""
    request, _ = exported
    repo = copy_models(request.export.repository, tmp_path / 'repo', 'demo')
    restricted = 'inference,metadata,model-config:x-api-key=s3cret'
    server = TritonServer.on_free_ports(
        repo, workdir=tmp_path / 'triton',
        extra_args=[f'--grpc-restricted-protocol={restricted}'])
    with server:
        url = f'127.0.0.1:{server.grpc_port}'
        cli = [sys.executable, '-m', 'client', '-u', url, '-m', 'demo',
               str(SAMPLES[0])]
        refused = subprocess.run(cli, capture_output=True, text=True,
                                 cwd=ROOT, timeout=120)
        assert refused.returncode == 2
        assert refused.stderr.splitlines() == [
            f'frcnn-detect: error: cannot use Triton at {url} (grpc): '
            '[StatusCode.UNAVAILABLE] This protocol is restricted, expecting '
            "header 'triton-grpc-protocol-x-api-key'"], refused.stderr
        allowed = subprocess.run(cli + ['-H', 'x-api-key=s3cret'],
                                 capture_output=True, text=True, cwd=ROOT,
                                 timeout=120)
        assert allowed.returncode == 0, allowed.stderr
        assert allowed.stdout.startswith(f'{SAMPLES[0]}: ')


@pytest.fixture()
def second_server(exported, tmp_path):
    """A server of its own, to be killed; on a hard-linked copy of the repo."""
    request, _ = exported
    repo = copy_models(request.export.repository, tmp_path / 'repo', 'faster_rcnn')
    server = TritonServer.on_free_ports(repo, workdir=tmp_path / 'triton')
    yield server
    server.stop()


@pytest.mark.native
@pytest.mark.slow
def test_a_broken_version_is_reported_and_the_previous_one_serves(
        second_server):
    model_dir = second_server.repository / 'faster_rcnn_detector'
    (model_dir / '2').mkdir()
    (model_dir / '2' / 'model.onnx').write_bytes(b'this is not an onnx model')
    config = model_dir / 'config.pbtxt'  # a version published by hand
    text = config.read_text()
    config.unlink()  # a hard link: the session's repository keeps its own
    config.write_text(text.replace('versions: 1', 'versions: 1 versions: 2'))
    second_server.start()
    report = '\n'.join(second_server.report)
    assert 'faster_rcnn_detector version 2 failed to load' in report
    assert 'Protobuf parsing failed' in report
    assert 'serving version(s) [1]' in report
    with TritonDetector(f'127.0.0.1:{second_server.grpc_port}') as det:
        assert len(det(SAMPLES[0])) > 0


@pytest.mark.native
@pytest.mark.slow
def test_a_detector_version_is_only_ever_served_with_its_own_class_list(
        exported, exported_demo, tmp_path):
    """Re-export the demo detector with other class names (v2), then break
    v2: the server falls back to v1 of all three steps, and v1's names come
    back, never v2's list on the v1 detector."""
    import torch

    from export.checkpoint import save
    from export.pipeline import run
    from export.request import Export, Request

    from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG
    request, _ = exported
    repo = copy_models(request.export.repository, tmp_path / 'repo', 'demo')
    old = json.loads((repo / 'demo_detector/1/metadata.json').read_text())['classes']
    renamed = [f'renamed_{name}' for name in old]
    state = torch.load(DEMO_CHECKPOINT, weights_only=True)
    checkpoint = save(tmp_path / 'renamed.pth', state['state_dict'], renamed)
    images = sorted((ROOT / 'assets' / 'samples').glob('*.jpg'))[:1]
    run(Request(
        Export(config=DEMO_CONFIG, checkpoint=checkpoint, images=images,
               name='demo', repository=repo)))
    probe = photo_like(320, 256, 11)

    def served_names():
        server = TritonServer.on_free_ports(repo, workdir=tmp_path / 'triton')
        try:
            server.start()
            with TritonDetector(f'127.0.0.1:{server.grpc_port}', 'demo') as det:
                return set(det(probe).names), server.report
        finally:
            server.stop()
    names, report = served_names()
    assert names and names <= set(renamed), names
    (repo / 'demo_detector' / '2' / 'model.onnx').write_bytes(b'broken')
    names, report = served_names()
    assert names and names <= set(old), names
    assert ('model demo: serving version 1 of demo_preprocess, demo_detector, '
            'demo_postprocess') in '\n'.join(report), report


def run_client(server, folder, out, *extra):
    return subprocess.Popen(
        [sys.executable, '-m', 'client', '-u', f'127.0.0.1:{server.grpc_port}',
         '--out', str(out), *extra, str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.05)


def assert_outputs_whole(out):
    for path in out.iterdir():
        assert not path.name.startswith('.'), f'left-over temporary {path}'
        if path.suffix == '.json':
            json.loads(path.read_text())
        else:
            with Image.open(path) as image:
                image.load()


def image_folder(folder, prefix: str, count: int, seed: int):
    folder.mkdir()
    for i in range(count):
        Image.fromarray(photo_like(260, 200, seed + i)).save(
            folder / f'{prefix}_{i}.png')
    return folder


@pytest.mark.slow
def test_killed_server_failed_images_are_named_and_a_rerun_finishes(
        second_server, tmp_path):
    folder = image_folder(tmp_path / 'images', 'img', 10, seed=400)
    out = tmp_path / 'out'
    second_server.start()
    proc = run_client(second_server, folder, out, '--retries', '0')
    wait_for(lambda: out.exists() and len(list(out.glob('img_*.json'))) >= 2)
    second_server.process.kill()  # the server alone, as a crash would
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    done = {p.stem for p in out.glob('img_*.json')}
    failed = [line for line in stderr.splitlines() if ': error: ' in line]
    assert failed and len(done) + len(failed) == 10, (done, stderr)
    for line in failed:  # each failure names its image
        assert any(f'img_{i}.png' in line for i in range(10))
    assert 'Traceback' not in stderr
    assert_outputs_whole(out)

    second_server.start()
    proc = run_client(second_server, folder, out)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f'skipping {len(done)} images already done' in stdout
    rows = json.loads((out / 'detections.json').read_text())
    assert {r['file_name'] for r in rows} <= {f'img_{i}.png' for i in range(10)}
    assert len(list(out.glob('img_*.jpg'))) == 10
    assert_outputs_whole(out)


@pytest.mark.slow
def test_retries_ride_out_a_server_restart(second_server, tmp_path):
    folder = image_folder(tmp_path / 'images', 'r', 6, seed=500)
    out = tmp_path / 'out'
    second_server.start()
    proc = run_client(second_server, folder, out, '--retries', '8')  # >= 23 s
    wait_for(lambda: out.exists() and len(list(out.glob('r_*.json'))) >= 1)
    second_server.stop()
    second_server.start()  # same ports: the client's retries reach it again
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert len(list(out.glob('r_*.json'))) == 6


CRASHER = '''
import os, signal
from pathlib import Path
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Kills its server (the stub's parent) while loading, as often as
    the file crashes_left says."""

    def initialize(self, args):
        left = Path(__file__).parent / 'crashes_left'
        count = int(left.read_text())
        if count:
            left.write_text(str(count - 1))
            os.kill(os.getppid(), signal.SIGSEGV)

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor('y', np.ones(
            1, np.float32))]) for _ in requests]
'''


def crashing_repository(folder, crashes: int):
    model = folder / 'crasher'
    (model / '1').mkdir(parents=True)
    (model / '1' / 'model.py').write_text(CRASHER)
    (model / '1' / 'crashes_left').write_text(str(crashes))
    (model / 'config.pbtxt').write_text(
        'backend: "python"\nmax_batch_size: 0\n'
        'input [{ name: "x" data_type: TYPE_FP32 dims: [1] }]\n'
        'output [{ name: "y" data_type: TYPE_FP32 dims: [1] }]\n')
    return folder


@pytest.mark.slow
def test_a_server_that_crashes_during_start_up_is_started_once_more(tmp_path):
    repo = crashing_repository(tmp_path / 'repo', crashes=1)
    with TritonServer.on_free_ports(repo, workdir=tmp_path / 'triton') as server:
        assert len(server.report) == 1, server.report
        assert server.report[0].startswith(
            'tritonserver was killed by SIGSEGV during start-up'), server.report
        assert server.report[0].endswith('; started it again')
        assert (repo / 'crasher/1/crashes_left').read_text() == '0'
        client = grpcclient.InferenceServerClient(f'127.0.0.1:{server.grpc_port}')
        assert client.is_model_ready('crasher')
        log = server.log_file.read_text()
        assert log.count('--- started again after a crash ---') == 1


def test_a_server_that_crashes_at_every_start_is_an_error(tmp_path):
    from serve.errors import ServerError
    repo = crashing_repository(tmp_path / 'repo', crashes=5)
    server = TritonServer.on_free_ports(repo, workdir=tmp_path / 'triton')
    with pytest.raises(ServerError, match=r'^tritonserver was killed by '
                       r'SIGSEGV during start-up: .*crasher.* \(started 2 times\)$'):
        server.start()
    assert (repo / 'crasher/1/crashes_left').read_text() == '3'
    assert server.process.poll() is not None
