"""contrib/kubernetes/: valid against the Kubernetes schemas, and true to the server's settings.

``kubernetes-validate`` ships the schemas of every Kubernetes version it knows
inside the package: validation needs no network.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import ValidationError, validate

from hypercorn.config import Config
from hypercorn.shared.settings import SETTINGS_BY_NAME

KUBERNETES = Path(__file__).resolve().parent.parent / "contrib" / "kubernetes"
OLDEST = "1.30.0"  # the oldest Kubernetes the manifests are checked against


def resources() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


@pytest.mark.parametrize("version", [OLDEST, "1.37.0"])
@pytest.mark.parametrize("kind", ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"])
def test_manifest_is_valid_strictly(kind: str, version: str) -> None:
    validate(resources()[kind], version, strict=True)


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = resources()["Deployment"]
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 40
    with pytest.raises(ValidationError):
        validate(deployment, OLDEST, strict=True)


def _config() -> tuple[Config, dict[str, Any]]:
    text = resources()["ConfigMap"]["data"]["hypercorn.toml"]
    return Config.from_mapping(tomllib.loads(text)), tomllib.loads(text)


def test_the_pods_outlast_the_drain_and_the_graceful_stop() -> None:
    config, _ = _config()
    pod = resources()["Deployment"]["spec"]["template"]["spec"]
    assert config.drain_delay > 0
    assert pod["terminationGracePeriodSeconds"] > config.drain_delay + config.graceful_timeout


def test_probes_and_ports_match_the_config() -> None:
    config, raw = _config()
    assert set(raw) <= set(SETTINGS_BY_NAME)  # no unknown keys
    resources_ = resources()
    pod = resources_["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert config.health_bind is not None
    assert ports["health"] == int(config.health_bind.rsplit(":", 1)[1])
    assert ports["http"] == int(config.bind[0].rsplit(":", 1)[1])
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    mount = container["volumeMounts"][0]["mountPath"]
    assert f"{mount}/hypercorn.toml" in container["command"]
    labels = resources_["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert resources_["Service"]["spec"]["selector"].items() <= labels.items()
    assert resources_["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert resources_["Service"]["spec"]["ports"][0]["targetPort"] == "http"
