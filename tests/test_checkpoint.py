"""make checkpoint: the real download code, against a local HTTP server."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest

from export.checkpoint import Release, download
from export.errors import ExportError
from ground.process import free_port


@pytest.fixture()
def http_folder(tmp_path):
    served = tmp_path / 'served'
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()


def test_download_verifies_the_hash_prefix(http_folder, tmp_path):
    served, base = http_folder
    payload = b'weights' * 1000
    (served / 'model_x.pth').write_bytes(payload)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    path = download(Release(f'{base}/model_x.pth', prefix), tmp_path / 'ckpt')
    assert path.read_bytes() == payload
    # present and verified: no second download (the server copy is gone)
    (served / 'model_x.pth').unlink()
    assert download(Release(f'{base}/model_x.pth', prefix),
                    tmp_path / 'ckpt') == path


def test_wrong_hash_is_refused_and_nothing_is_kept(http_folder, tmp_path):
    served, base = http_folder
    (served / 'model_y.pth').write_bytes(b'tampered')
    with pytest.raises(ExportError, match='expected 00000000'):
        download(Release(f'{base}/model_y.pth', '00000000'), tmp_path / 'ckpt')
    assert list((tmp_path / 'ckpt').iterdir()) == []


def test_offline_gives_a_clear_message(tmp_path):
    url = f'http://127.0.0.1:{free_port()}/faster_rcnn.pth'
    with pytest.raises(ExportError, match='cannot download .*no network'):
        download(Release(url, '047c8118'), tmp_path / 'ckpt')
    assert list((tmp_path / 'ckpt').iterdir()) == []
