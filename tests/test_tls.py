"""TLS in front of the server, as an ingress or a proxy ends it: a real
nginx (the one `make cluster` runs) with certificates from a test CA, the
session's server behind it, and the client speaking gRPC over TLS, HTTPS and
mutual TLS to it."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import trustme
from triton_frcnn.client import (AsyncTritonDetector, ServerUnavailable, Tls,
                                 TritonDetector)
from triton_frcnn.client.cli import main as detect

from tools.cluster.nginx import TlsFront, nginx

from .conftest import ROOT, SAMPLES
from .test_client import assert_same


@pytest.fixture(scope='module')
def pki(tmp_path_factory) -> SimpleNamespace:
    """A CA, nginx's certificate for 127.0.0.1 and a client's, as PEM files."""
    folder = tmp_path_factory.mktemp('pki')
    ca = trustme.CA()
    files = SimpleNamespace(ca=folder / 'ca.pem')
    ca.cert_pem.write_to_path(str(files.ca))
    for who, identity in (('server', '127.0.0.1'), ('client', 'client.frcnn')):
        issued = ca.issue_cert(identity)
        key, chain = folder / f'{who}.key', folder / f'{who}.pem'
        issued.private_key_pem.write_to_path(str(key))
        chain.write_bytes(b''.join(p.bytes() for p in issued.cert_chain_pems))
        setattr(files, who, (key, chain))
    return files


@pytest.fixture(scope='module')
def fronts(pki, grpc_url, http_url, tmp_path_factory) -> dict:
    """'tls' and 'mutual' (client certificate required): their gRPC and
    HTTP addresses; plain gRPC/HTTP behind them."""
    (key, chain), host = pki.server, '127.0.0.1'
    behind = [SimpleNamespace(host=host, grpc_port=int(grpc_url.rsplit(':')[1]),
                              http_port=int(http_url.rsplit(':')[1]))]
    found = {}
    with nginx(behind, tmp_path_factory.mktemp('tls'), host,
               TlsFront(chain, key)) as tls, \
            nginx(behind, tmp_path_factory.mktemp('mutual'), host,
                  TlsFront(chain, key, client_ca=pki.ca)) as mutual:
        for name, (grpc_port, http_port) in (('tls', tls), ('mutual', mutual)):
            found[name] = {'grpc': f'{host}:{grpc_port}',
                           'http': f'{host}:{http_port}'}
        yield found


@pytest.fixture(scope='module')
def direct(grpc_url):
    with TritonDetector(grpc_url, 'faster_rcnn', wait=60) as det:
        yield det(SAMPLES[0])


@pytest.mark.parametrize('protocol', ['grpc', 'http'])
def test_through_tls_the_detections_are_the_servers_own(
        fronts, pki, direct, protocol):
    with TritonDetector(fronts['tls'][protocol], 'faster_rcnn', protocol,
                        tls=Tls(str(pki.ca)), wait=30) as det:
        assert det.spec.max_batch_size > 0  # metadata and config came through
        assert_same(det(SAMPLES[0]), direct)


def test_the_asyncio_client_speaks_tls(fronts, pki, direct):
    async def detect_one():
        async with await AsyncTritonDetector.connect(
                fronts['tls']['grpc'], tls=Tls(str(pki.ca)), wait=30) as det:
            return await det(SAMPLES[0])
    assert_same(asyncio.run(detect_one()), direct)


@pytest.mark.parametrize('protocol', ['grpc', 'http'])
def test_mutual_tls_serves_a_client_with_its_certificate_only(
        fronts, pki, direct, protocol):
    key, chain = pki.client
    with TritonDetector(fronts['mutual'][protocol], 'faster_rcnn', protocol,
                        tls=Tls(str(pki.ca), str(key), str(chain)),
                        wait=30) as det:
        assert_same(det(SAMPLES[0]), direct)
    with pytest.raises(ServerUnavailable, match='after 1 s'):
        TritonDetector(fronts['mutual'][protocol], 'faster_rcnn', protocol,
                       tls=Tls(str(pki.ca)), wait=1)


@pytest.mark.parametrize('protocol', ['grpc', 'http'])
@pytest.mark.parametrize('tls, says', [
    (Tls(), 'CERTIFICATE_VERIFY_FAILED'),  # the system's roots lack the test CA
    (None, ''),                            # plain text to a TLS port
])
def test_a_server_the_client_cannot_trust_or_talk_to_is_one_error(
        fronts, protocol, tls, says):
    with pytest.raises(ServerUnavailable) as refused:
        TritonDetector(fronts['tls'][protocol], 'faster_rcnn', protocol,
                       tls=tls, wait=1)
    message = str(refused.value)
    assert message.startswith(f'cannot use Triton at {fronts["tls"][protocol]} '
                              f'({protocol}): ') and message.endswith('after 1 s')
    assert says.lower() in message.lower() and '\n' not in message


def test_the_cli_takes_triton_s_tls_flags(fronts, pki, capsys):
    key, chain = pki.client
    assert detect(['-u', fronts['mutual']['grpc'], '--root-certificates',
                   str(pki.ca), '--private-key', str(key), '--certificate-chain',
                   str(chain), str(SAMPLES[0])]) == 0
    assert capsys.readouterr().out.startswith(f'{SAMPLES[0]}: ')


def test_an_untrusted_server_is_one_line_from_the_cli(fronts):
    """gRPC's own log of the failed handshake stays out of the CLI's stderr."""
    done = subprocess.run(
        [sys.executable, '-m', 'client', '-u', fronts['tls']['grpc'], '--ssl',
         '--wait', '1', str(SAMPLES[0])], capture_output=True, text=True,
        cwd=ROOT, env={k: v for k, v in os.environ.items()
                       if not k.startswith('GRPC_')})
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f'frcnn-detect: error: cannot use Triton at '
                           f'{fronts["tls"]["grpc"]} (grpc): ')
    assert 'CERTIFICATE_VERIFY_FAILED' in line


@pytest.mark.parametrize('args, line', [
    (['--private-key', __file__],
     'a client certificate needs both its private key and its certificate chain'),
    (['--root-certificates', '/nonexistent/ca.pem'],
     'no such file or folder: /nonexistent/ca.pem'),
])
def test_the_cli_refuses_tls_flags_it_cannot_use(args, line, capsys):
    with pytest.raises(SystemExit) as exit:
        detect([*args, str(SAMPLES[0])])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f'frcnn-detect: error: {line}'

