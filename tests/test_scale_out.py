"""Past one process: the repository on a real S3-compatible server (moto),
served by tritonserver's own S3 support; replicas behind a real nginx; a
replica killed mid-run; a new version rolled out on every replica."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from triton_frcnn.client import AsyncTritonDetector, Retry, TritonDetector

from export.store import S3Store, S3Url
from ground.process import free_port
from tools.cluster import cluster
from tools.cluster.s3 import BUCKET, aws_environment, s3_server

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG, ROOT, copy_models, photo_like

NO_NGINX = shutil.which('nginx') is None and not Path('/usr/sbin/nginx').exists()


def test_s3_urls_parse_as_tritonserver_reads_them():
    aws = S3Url.parse('s3://models/team/faster_rcnn')
    assert (aws.endpoint, aws.bucket, aws.prefix) == (None, 'models', 'team/faster_rcnn')
    local = S3Url.parse('s3://127.0.0.1:9000/models')
    assert (local.endpoint, local.bucket, local.prefix) == (
        'http://127.0.0.1:9000', 'models', '')
    tls = S3Url.parse('s3://https://minio.storage:9000/models/a/b/')
    assert (tls.endpoint, tls.bucket, tls.prefix) == (
        'https://minio.storage:9000', 'models', 'a/b')
    assert tls.key('demo', '1', 'model.onnx') == 'a/b/demo/1/model.onnx'


@pytest.fixture(scope='module')
def s3(tmp_path_factory):
    """A moto S3 server with the bucket made, credentials in the environment."""
    with aws_environment(), s3_server(tmp_path_factory.mktemp('s3')) as address:
        yield address


def export_cli(repository: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'export', '-c', str(DEMO_CONFIG), '-w',
         str(DEMO_CHECKPOINT), '-m', 'demo', '-r', repository, *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=300)


def one_line_error(done: subprocess.CompletedProcess, *expected: str) -> str:
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [l for l in done.stderr.strip().splitlines() if 'error' in l]
    assert len(lines) == 1 and 'Traceback' not in done.stderr, done.stderr[-2000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.slow
def test_unusable_s3_repositories_are_refused_in_one_line_naming_the_url(
        s3, tmp_path):
    closed = f's3://127.0.0.1:{free_port()}/{BUCKET}/repo'  # nothing listens
    one_line_error(export_cli(closed), closed)
    missing = f's3://{s3}/no-such-bucket/repo'
    one_line_error(export_cli(missing), missing, "no bucket 'no-such-bucket'")
    with s3_server(tmp_path, bucket=None, checks_keys=True) as strict:
        refused = f's3://{strict}/{BUCKET}/repo'
        one_line_error(export_cli(refused), refused, 'access denied')
    served = subprocess.run(
        [sys.executable, '-m', 'serve', '-r', missing, '--workdir',
         str(tmp_path / 'triton')], capture_output=True, text=True, cwd=ROOT,
        timeout=120)
    one_line_error(served, missing, "no bucket 'no-such-bucket'")
    assert S3Store(f's3://{s3}/{BUCKET}').keys() == set()  # nothing written


@pytest.fixture(scope='module')
def published(s3):
    """The demo detector exported straight to S3 by the export pipeline."""
    from export.pipeline import run
    from export.request import Export, Request
    url = f's3://{s3}/{BUCKET}/exported'
    images = sorted((ROOT / 'assets' / 'samples').glob('*.jpg'))[:1]
    result = run(Request(
        Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT, images=images,
               name='demo', repository=url)))
    return url, result


@pytest.mark.native
@pytest.mark.slow
def test_export_to_s3_is_served_from_s3_with_the_local_detections(
        published, stack, tmp_path):
    from serve.server import TritonServer
    url, result = published
    assert result.version_dir == f'{url}/demo_detector/1'
    store = S3Store(url)
    assert store.versions('demo_detector') == [1]
    assert store.read('demo', '1/ensemble.txt')  # S3 keeps no empty folder
    assert 'model_version: 1' in store.read('demo')
    probe = photo_like(320, 256, 21)
    with stack.detector('demo') as local:
        expected = local(probe)
    with TritonServer.on_free_ports(url, workdir=tmp_path / 'triton') as server, \
            TritonDetector(f'127.0.0.1:{server.grpc_port}', 'demo') as det:
        got = det(probe)
    assert len(got) == len(expected) > 0
    np.testing.assert_allclose(got.boxes, expected.boxes, atol=1e-3)
    np.testing.assert_allclose(got.scores, expected.scores, atol=1e-4)
    assert list(got.names) == list(expected.names)


@pytest.mark.slow
def test_a_publish_to_s3_without_a_gpu_placement_removes_the_older_one(
        published, tmp_path):
    """A format without a GPU placement published over one with it: the
    older configs/gpu.pbtxt objects, pinned to the old version, are
    deleted; a model this publish does not touch keeps its own."""
    url, _ = published
    source, target = S3Store(url), S3Store(f'{url}-placements')

    def stage(folder, models, named):
        for model in models:
            (folder / model / 'configs').mkdir(parents=True)
            (folder / model / 'config.pbtxt').write_text(source.read(model))
            if named:
                (folder / model / 'configs' / 'gpu.pbtxt').write_text(
                    source.read(model, 'configs/gpu.pbtxt'))
        return folder
    target.publish(stage(tmp_path / 'one', ['demo_detector', 'demo_preprocess'],
                         named=True), ['demo'])
    assert target.read('demo_preprocess', 'configs/gpu.pbtxt')
    target.publish(stage(tmp_path / 'two', ['demo_detector'], named=False),
                   ['demo'])
    assert target.read('demo_detector', 'configs/gpu.pbtxt') is None
    assert target.read('demo_detector')
    assert target.read('demo_preprocess', 'configs/gpu.pbtxt')


@pytest.fixture(scope='module')
def replicas(exported, exported_demo, tmp_path_factory):
    """Two replicas on the S3 repository behind nginx, rolling new versions
    in every second."""
    if NO_NGINX:
        pytest.skip('nginx is not installed (scripts/setup.sh installs it as root)')
    request, _ = exported
    work = tmp_path_factory.mktemp('cluster')

    def publish(url: str) -> None:
        staged = copy_models(request.export.repository, work / 'staged', 'demo')
        S3Store(url).publish(staged, ['demo'])
    with cluster(work, replicas=2, poll=1.0, publish=publish) as running:
        yield running


def admin(replica) -> grpcclient.InferenceServerClient:
    """A client of this replica alone, past nginx."""
    return grpcclient.InferenceServerClient(f'{replica.host}:{replica.grpc_port}')


def successes(replica, model: str = 'demo') -> int:
    """Requests this replica answered, from its own statistics."""
    stats = admin(replica).get_inference_statistics(model, as_json=True)
    return sum(int(s['inference_stats'].get('success', {}).get('count', 0))
               for s in stats['model_stats'])


@pytest.mark.slow
def test_two_replicas_serve_every_request_with_a_single_servers_detections(
        replicas, stack):
    probes = [photo_like(320, 256, 30 + i) for i in range(4)]
    with stack.detector('demo') as local:
        expected = [local(p) for p in probes]
    before = [successes(r) for r in replicas.replicas]
    with TritonDetector(replicas.grpc_url, 'demo') as det:
        got = [det(p) for p in probes * 3]
    for dets, want in zip(got, expected * 3):
        assert len(dets) == len(want) > 0
        np.testing.assert_allclose(dets.boxes, want.boxes, atol=1e-3)
        np.testing.assert_allclose(dets.scores, want.scores, atol=1e-4)
    served = [successes(r) - b for r, b in zip(replicas.replicas, before)]
    assert sum(served) == 12 and min(served) > 0, served


async def _run(url: str, images, concurrency: int, on_done) -> tuple:
    """Every image once at ``concurrency``; (answered, failures, retry)."""
    retry = Retry(retries=8, backoff=0.25, max_delay=2.0)
    answered, failures = 0, []
    queue = list(images)
    async with await AsyncTritonDetector.connect(url, 'demo', retry=retry,
                                                 timeout=120) as det:
        async def client():
            nonlocal answered
            while queue:
                image = queue.pop()
                try:
                    await det(image)
                    answered += 1
                    on_done(answered)
                except Exception as exc:  # counted: the assertion says which
                    failures.append(str(exc).splitlines()[0])
        await asyncio.gather(*(client() for _ in range(concurrency)))
    return answered, failures, retry


@pytest.mark.slow
def test_a_replica_killed_mid_run_loses_no_request_and_rejoins(replicas):
    images = [photo_like(256, 192, 200 + i % 16) for i in range(80)]
    victim = replicas.replicas[1]

    def on_done(n: int) -> None:
        if n == 20:  # a quarter in: the rest runs on without it
            victim.kill()
    answered, failures, retry = asyncio.run(
        _run(replicas.grpc_url, images, 8, on_done))
    assert victim.process.poll() is not None  # it was killed mid-run...
    with pytest.raises(Exception, match='(?i)unavailable|connect|refused'):
        successes(victim)  # ...tritonserver with it
    assert (answered, failures) == (80, []), failures[:3]
    survivor = replicas.replicas[0]
    assert successes(survivor) > 0
    victim.start()
    before = successes(victim)
    deadline = time.monotonic() + 60
    with TritonDetector(replicas.grpc_url, 'demo') as det:
        while successes(victim) == before and time.monotonic() < deadline:
            det(images[0])
    assert successes(victim) > before, 'the restarted replica got no request'


@pytest.mark.slow
def test_a_new_version_rolls_out_on_every_replica_with_no_failed_request(
        replicas):
    from export.pipeline import run
    from export.request import Export, Placement, Request
    stop, answered, failures = threading.Event(), [0], []

    def load() -> None:
        with TritonDetector(replicas.grpc_url, 'demo',
                            retry=Retry(retries=0)) as det:
            while not stop.is_set():
                try:
                    det(photo_like(256, 192, answered[0] % 8))
                    answered[0] += 1
                except Exception as exc:  # counted: the assertion says which
                    failures.append(str(exc).splitlines()[0])
    sender = threading.Thread(target=load)
    sender.start()
    try:
        images = sorted((ROOT / 'assets' / 'samples').glob('*.jpg'))[:1]
        with aws_environment():
            run(Request(
                Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT,
                       images=images, name='demo',
                       repository=replicas.repository),
                placement=Placement(cpus=1)))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
                pinned(r) == {2} for r in replicas.replicas):
            time.sleep(1)
        during = answered[0]
        time.sleep(2)  # requests go on after the switch
    finally:
        stop.set()
        sender.join()
    assert [pinned(r) for r in replicas.replicas] == [{2}, {2}]
    assert failures == [] and answered[0] > during > 0, failures[:3]


def pinned(replica) -> set:
    """The versions the replica's loaded ensemble runs."""
    config = admin(replica).get_model_config('demo', as_json=True)['config']
    return {int(s['model_version'])
            for s in config['ensemble_scheduling']['step']}
