"""Beyond capacity: refused at once as "busy", the server stays up, and the
client's retries turn a burst of refusals into successes."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from triton_frcnn.client import Retry, ServerBusy

from .conftest import DEMO_CHECKPOINT, DEMO_CONFIG, ROOT

BURST = 24
pytestmark = pytest.mark.slow  # a server and an export of its own


@pytest.fixture(scope='module')
def busy(tmp_path_factory):
    """The demo detector exported with a queue of one request per model,
    on a server of its own; and 16 synthetic images."""
    from export.request import Export, Placement, Request
    from synthetic.generate import write_split
    from tools.stack import served
    folder = tmp_path_factory.mktemp('overload')
    write_split(folder, 'val', 16, seed=3)
    images = sorted((folder / 'val').glob('*.jpg'))
    request = Request(
        Export(config=DEMO_CONFIG, checkpoint=DEMO_CHECKPOINT,
               images=images[:2], name='demo', repository=folder / 'repo'),
        placement=Placement(max_queue=1))
    with served(request.export.repository, [request],
                workdir=folder / 'triton') as stack:
        yield stack, images


def burst(lib, url: str, payload: bytes) -> list:
    def one(_):
        client = lib.InferenceServerClient(url)
        tensor = lib.InferInput('IMAGE', [1, 1], 'BYTES')
        tensor.set_data_from_numpy(np.array([[payload]], dtype=object))
        try:
            client.infer('demo', [tensor])
            return 'ok'
        except Exception as exc:
            return f'{exc.status()} {exc.message()}'
        finally:
            client.close()
    with ThreadPoolExecutor(BURST) as pool:
        return list(pool.map(one, range(BURST)))


@pytest.mark.native
@pytest.mark.parametrize('protocol', ['grpc', 'http'])
def test_a_full_queue_refuses_with_busy_and_the_server_stays_ready(busy, protocol):
    stack, images = busy
    lib, url = ((grpcclient, stack.grpc_url) if protocol == 'grpc'
                else (httpclient, stack.http_url))
    outcomes = burst(lib, url, images[0].read_bytes())
    refused = [o for o in outcomes if o != 'ok']
    status = 'StatusCode.UNAVAILABLE' if protocol == 'grpc' else '503'
    assert 0 < len(refused) < BURST, outcomes
    assert all(o.startswith(status) and 'Exceeds maximum queue size' in o
               for o in refused), refused
    assert stack.server.is_ready()
    with stack.detector('demo') as det:  # later requests succeed
        assert len(det(images[0])) > 0


def test_without_retries_the_client_says_server_busy(busy):
    stack, images = busy
    payload = images[0].read_bytes()
    with stack.detector('demo', retry=Retry(retries=0)) as det:
        with ThreadPoolExecutor(BURST) as pool:
            outcomes = list(pool.map(
                lambda _: _outcome(det.infer_bytes, payload), range(BURST)))
        assert det.retry.busy == sum(isinstance(o, ServerBusy) for o in outcomes) > 0
    messages = {str(o) for o in outcomes if isinstance(o, Exception)}
    assert all(m.startswith('server busy: refused for load after 0 retries')
               for m in messages), messages


def _outcome(call, payload):
    try:
        return call(payload)
    except Exception as exc:
        return exc


def test_retries_turn_a_burst_of_refusals_into_all_successes(busy, tmp_path):
    stack, images = busy
    with stack.detector('demo') as det:
        alone = {p.name: det(p) for p in images}
    done = subprocess.run(
        [sys.executable, '-m', 'client', '-u', stack.grpc_url, '-m', 'demo',
         '--concurrency', '16', '--retries', '12', '--score-thr', '0',
         '--out', str(tmp_path / 'out'), *map(str, images)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    assert 'error' not in done.stderr
    summary = [line for line in done.stderr.splitlines() if 'refusals' in line]
    retries, refusals = (int(w) for w in summary[0].split()
                         if w.isdigit())  # "N retries; M "server busy" refusals"
    assert refusals > 0 and retries >= refusals, summary
    import json
    rows = json.loads((tmp_path / 'out' / 'detections.json').read_text())
    for name, dets in alone.items():
        served = [r for r in rows if r['file_name'] == name]
        assert [r['score'] for r in served] == [round(float(s), 5)
                                                for s in dets.scores]
