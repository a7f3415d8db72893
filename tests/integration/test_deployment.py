"""Docker and Kubernetes files, validated offline: hadolint on both Dockerfiles, `kubectl
kustomize` renders every overlay, kubernetes-validate (strict) accepts every object, and the
invariants that tie the manifests to the app hold."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.observability import tracing

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OVERLAYS = ("cpu", "gpu", "vllm")
#: Custom resources whose schemas kubernetes-validate does not bundle; checked below instead.
CUSTOM_KINDS = {"ServiceMonitor"}
EXPECTED_KINDS = {
    "Deployment",
    "Service",
    "ConfigMap",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "StatefulSet",
    "ServiceMonitor",
}


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is missing: pip install -e '.[dev]' installs it")
    return str(path)


def _render(target: Path, *flags: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [_tool("kubectl"), "kustomize", *flags, str(target)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, _render(ROOT / "k8s" / "overlays" / request.param)


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_hadolint_passes_on_both_dockerfiles() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--config", str(ROOT / "docker/.hadolint.yaml"),
         str(ROOT / "docker/Dockerfile"), str(ROOT / "docker/Dockerfile.cuda")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rendered_object_passes_strict_validation(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    overlay, docs = rendered
    kinds = {doc["kind"] for doc in docs}
    assert kinds >= EXPECTED_KINDS
    for index, doc in enumerate(docs):
        if doc["kind"] in CUSTOM_KINDS:
            continue
        path = tmp_path / f"{overlay}-{index}.yaml"
        path.write_text(yaml.safe_dump(doc))
        result = subprocess.run(
            [_tool("kubernetes-validate"), "--strict", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "passed" in result.stdout


def test_the_secret_example_is_valid_but_not_deployed() -> None:
    example = ROOT / "k8s/base/secret.example.yaml"
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", str(example)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    for overlay in OVERLAYS:
        assert not [d for d in _render(ROOT / "k8s/overlays" / overlay) if d["kind"] == "Secret"]


def test_probes_ports_and_shutdown_timing_match_the_app(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    app_paths = set(create_app(Settings()).openapi()["paths"])
    deployment = _one(docs, "Deployment", "copygen")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    config = _one(docs, "ConfigMap", "copygen-config")["data"]

    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in app_paths
        assert get["port"] == "http"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"

    [port] = container["ports"]
    assert port["containerPort"] == int(config["COPYGEN_PORT"])
    service = _one(docs, "Service", "copygen")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    monitor = _one(docs, "ServiceMonitor", "copygen")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["spec"]["endpoints"][0]["path"] in app_paths

    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(config["COPYGEN_SHUTDOWN_DRAIN_S"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain


def test_resources_security_and_images(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            image = container["image"]
            assert ":" in image
            assert not image.endswith(":latest")
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"])
            assert "memory" in resources["limits"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    [server] = _one(docs, "Deployment", "copygen")["spec"]["template"]["spec"]["containers"]
    if overlay == "gpu":
        assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert server["image"].endswith("-cuda")
        pod = _one(docs, "Deployment", "copygen")["spec"]["template"]["spec"]
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    else:
        assert "nvidia.com/gpu" not in server["resources"]["limits"]


def test_the_vllm_overlay_puts_copygen_in_front_of_vllm() -> None:
    docs = _render(ROOT / "k8s/overlays/vllm")
    config = _one(docs, "ConfigMap", "copygen-config")["data"]
    url = httpx.URL(config["COPYGEN_BACKEND_URL"])
    service = _one(docs, "Service", url.host)
    assert service["spec"]["ports"][0]["port"] == url.port
    assert url.path == "/v1"
    deployment = _one(docs, "Deployment", "vllm")
    pod = deployment["spec"]["template"]["spec"]
    [vllm] = pod["containers"]
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert f"--served-model-name={config['COPYGEN_BACKEND_MODEL']}" in vllm["args"]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert vllm["image"].startswith("vllm/vllm-openai:")
    [copygen] = _one(docs, "Deployment", "copygen")["spec"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in copygen["resources"]["limits"]
    # Each scales on its own queue.
    metrics = {
        name: [m["pods"]["metric"]["name"] for m in _one(docs, "HorizontalPodAutoscaler", name)[
            "spec"]["metrics"] if m["type"] == "Pods"]
        for name in ("copygen", "vllm")
    }  # fmt: skip
    assert metrics == {"copygen": ["copygen_queue_depth"], "vllm": ["vllm_num_requests_waiting"]}
    # Only copygen's pods (and monitoring) reach vLLM.
    policy = _one(docs, "NetworkPolicy", "copygen-vllm")
    sources = policy["spec"]["ingress"][0]["from"]
    assert {"app.kubernetes.io/component": "server", "app.kubernetes.io/name": "copygen"} in [
        s.get("podSelector", {}).get("matchLabels") for s in sources
    ]


def test_configmap_variables_are_real_settings(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    data = _one(docs, "ConfigMap", "copygen-config")["data"]
    known = {f"COPYGEN_{name.upper()}" for name in Settings.model_fields}
    # OTEL_* are OpenTelemetry's own variables (observability/tracing.py), read by its SDK.
    data = {key: value for key, value in data.items() if not key.startswith("OTEL_")}
    assert set(data) <= known, set(data) - known
    secret = yaml.safe_load((ROOT / "k8s/base/secret.example.yaml").read_text())["stringData"]
    assert set(secret) <= known
    # The pod's whole environment is valid settings (it binds 0.0.0.0, so keys are required)
    # once the Secret's placeholders are replaced; left in, they keep copygen from starting.
    env = {**data, **secret}
    settings = {key.removeprefix("COPYGEN_").lower(): value for key, value in env.items()}
    with pytest.raises(ValueError, match="placeholder"):
        Settings(**settings)
    real = {
        "api_keys": f"web-app:{os.urandom(16).hex()},ops:{os.urandom(16).hex()}:admin",
        "cache_encryption_key": base64.b64encode(os.urandom(32)).decode(),
        "database_url": "postgresql://copygen:s3cret@my-postgres.example.com:5432/copygen",
    }
    assert {name for name, value in settings.items() if "REPLACE-ME" in value} == set(real)
    Settings(**{**settings, **real})


def test_only_copygen_pods_reach_redis(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    policy = _one(docs, "NetworkPolicy", "copygen-redis")
    redis = _one(docs, "StatefulSet", "copygen-redis")
    server = _one(docs, "Deployment", "copygen")
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items()
        <= redis["spec"]["template"]["metadata"]["labels"].items()
    )
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert (
        peer["podSelector"]["matchLabels"].items()
        <= server["spec"]["template"]["metadata"]["labels"].items()
    )
    url = _one(docs, "ConfigMap", "copygen-config")["data"]["COPYGEN_REDIS_URL"]
    assert "copygen-redis:6379" in url


def test_the_external_redis_component_removes_the_bundled_redis(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    k8s = os.path.relpath(ROOT / "k8s", overlay)  # kustomize refuses absolute paths
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{k8s}/overlays/cpu]\ncomponents: [{k8s}/components/external-redis]\n"
    )
    docs = _render(overlay)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "copygen-redis") not in kinds
    assert ("Service", "copygen-redis") not in kinds
    assert ("Deployment", "copygen") in kinds


def test_compose_wires_redis_prometheus_and_the_dashboard() -> None:
    compose = yaml.safe_load((ROOT / "docker/compose.yaml").read_text())
    services = compose["services"]
    assert {"copygen", "redis", "prometheus", "grafana"} <= set(services)
    assert services["copygen"]["environment"]["COPYGEN_REDIS_URL"].startswith("redis://redis:")
    scrape = yaml.safe_load((ROOT / "docker/prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["copygen:8000"]
    dashboard_mount = next(v for v in services["grafana"]["volumes"] if "dashboard" in v)
    source = dashboard_mount.split(":")[0]
    dashboard = json.loads((ROOT / "docker" / source).read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs
    assert all("copygen_" in e or "process_" in e for e in exprs)


def test_the_commented_tracing_variables_turn_tracing_on_when_uncommented() -> None:
    text = (ROOT / "k8s/base/configmap.yaml").read_text(encoding="utf-8")
    uncommented = text.replace("  # OTEL_", "  OTEL_")
    data = yaml.safe_load(uncommented)["data"]
    otel = {key: value for key, value in data.items() if key.startswith("OTEL_")}
    assert otel["OTEL_EXPORTER_OTLP_PROTOCOL"] == tracing.PROTOCOL
    assert tracing.traces_endpoint(otel) == "http://otel-collector.observability.svc:4318"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in yaml.safe_load(text)["data"]  # off as shipped
