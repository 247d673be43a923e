"""The overlays render, every built-in object is valid Kubernetes, and each overlay holds what
it promises: in-cluster PostgreSQL and RabbitMQ in dev, none and no Secret in prod."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from herald_provider_sim.tokens import TokenVerifier

# The oldest Kubernetes the manifests claim (native preStop sleep: 1.30) and the newest schema.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
CUSTOM_GROUPS = ("monitoring.coreos.com/", "keda.sh/")
CLUSTER_SCOPED = {"Namespace"}
RECOMMENDED = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_objects_are_valid_kubernetes(build, version):
    problems = []
    for obj in build.objects:
        if obj["apiVersion"].startswith(CUSTOM_GROUPS):
            continue  # CRDs: checked against their own schemas (test_custom_resources.py)
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{obj['kind']} {obj['metadata']['name']}: {error.message}")
    assert not problems, f"{build.name} on {version}:\n" + "\n".join(problems)


def test_every_object_is_in_the_herald_namespace_and_labelled(build):
    for obj in build.objects:
        meta = obj["metadata"]
        where = f"{build.name}: {obj['kind']} {meta['name']}"
        if obj["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace") == "herald", where
        labels = meta.get("labels", {})
        assert all(labels.get(key) for key in RECOMMENDED), f"{where} lacks {RECOMMENDED}"
        assert labels["app.kubernetes.io/part-of"] == "herald", where
    for workload in build.workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(key) for key in RECOMMENDED), workload["metadata"]["name"]


def test_services_pdbs_and_autoscalers_select_existing_workloads(build):
    pods = [w["spec"]["template"]["metadata"]["labels"] for w in build.workloads()]
    for service in build.all("Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pods), service["metadata"]
    for pdb in build.all("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= labels.items() for labels in pods), pdb["metadata"]
    scalers = build.all("HorizontalPodAutoscaler") + build.all("ScaledObject")
    for scaler in scalers:
        build.get("Deployment", scaler["spec"]["scaleTargetRef"]["name"])


def test_prod_runs_no_database_or_broker_and_ships_no_secret(builds):
    prod = builds["prod"]
    assert prod.all("StatefulSet") == []
    assert prod.all("PersistentVolumeClaim") == []
    # The operator creates herald-secrets; rendering one would overwrite it on every apply.
    assert prod.all("Secret") == []


def test_prod_secret_example_has_placeholders_for_every_key_the_pods_read(builds):
    example = yaml.safe_load((K8S / "overlays" / "prod" / "secret.example.yaml").read_text())
    values = example["stringData"]
    assert example["metadata"] == {
        "name": "herald-secrets",
        "namespace": "herald",
        "labels": {"app.kubernetes.io/name": "herald", "app.kubernetes.io/part-of": "herald"},
    }
    assert all("CHANGE-ME" in value for value in values.values() if value), values
    referenced = {
        item["valueFrom"]["secretKeyRef"]["key"]
        for _, container in builds["prod"].containers()
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert referenced == set(values)
    base_example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    assert set(base_example["stringData"]) == referenced


def test_dev_runs_postgresql_15_and_rabbitmq_with_volumes(builds):
    dev = builds["dev"]
    images = {}
    for statefulset in dev.all("StatefulSet"):
        spec = statefulset["spec"]
        (container,) = spec["template"]["spec"]["containers"]
        images[container["image"].split(":")[0]] = container["image"]
        assert spec["volumeClaimTemplates"], statefulset["metadata"]["name"]
        mounts = {m["name"] for m in container["volumeMounts"]}
        assert {t["metadata"]["name"] for t in spec["volumeClaimTemplates"]} <= mounts
        governing = dev.get("Service", spec["serviceName"])
        assert governing["spec"]["clusterIP"] == "None"
    assert set(images) == {"postgres", "rabbitmq"}
    assert images["postgres"].split(":")[1].startswith("15")
    assert dev.find("Deployment", "herald-provider-sim") is not None


def test_dev_secret_points_herald_at_the_in_cluster_services(builds):
    dev = builds["dev"]
    secret = dev.secret("herald-secrets")
    infra = dev.secret("herald-dev-infra")

    database = urlsplit(secret["HERALD_DATABASE_URL"])
    postgres = dev.get("StatefulSet", "herald-postgres")
    (container,) = postgres["spec"]["template"]["spec"]["containers"]
    postgres_env = dev.env(container)
    assert database.hostname == postgres["spec"]["serviceName"]
    assert database.port == container["ports"][0]["containerPort"]
    assert database.username == postgres_env["POSTGRES_USER"]
    assert database.password == postgres_env["POSTGRES_PASSWORD"]
    assert database.path == "/" + postgres_env["POSTGRES_DB"]

    broker = urlsplit(secret["HERALD_AMQP_URL"])
    rabbitmq = dev.get("StatefulSet", "herald-rabbitmq")
    conf = dict(
        line.split(" = ", 1) for line in infra["20-herald.conf"].splitlines() if " = " in line
    )
    assert broker.hostname == rabbitmq["spec"]["serviceName"]
    assert broker.port == 5672
    assert (broker.username, broker.password) == (conf["default_user"], conf["default_pass"])
    assert broker.path == "/" + conf["default_vhost"]

    # The senders' provider is the simulator, and it accepts their token.
    sender = next(c for w, c in dev.herald_containers() if c["command"] == ["herald-sender"])
    provider = urlsplit(dev.env(sender)["HERALD_PROVIDER_URL"])
    sim = next(c for w, c in dev.herald_containers() if c["command"] == ["herald-provider-sim"])
    sim_env = dev.env(sim)
    assert provider.hostname == "herald-provider-sim"
    assert provider.port == int(sim_env["HERALD_SIM_PORT"])
    verifier = TokenVerifier(sim_env["HERALD_SIM_JWT_SECRET"])
    assert verifier.verify("Bearer " + secret["HERALD_PROVIDER_TOKEN"])


def test_migration_job_is_named_after_the_release(build):
    (job,) = build.all("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    tag = container["image"].split(":")[1]
    assert job["metadata"]["name"] == f"herald-migrate-{tag}"
    assert job["metadata"]["labels"]["app.kubernetes.io/version"] == tag
    assert DNS_SUBDOMAIN.match(job["metadata"]["name"])
    assert len(job["metadata"]["name"]) <= 63
    # One release, one tag: the Job migrates for the code the Deployments run.
    assert {c["image"] for _, c in build.herald_containers()} == {container["image"]}
    # It must not wait for the hashed ConfigMap: it can be applied before everything else.
    assert "envFrom" not in container
    assert [e["name"] for e in container["env"]] == ["HERALD_DATABASE_URL"]


def test_senders_are_scaled_by_one_autoscaler(build):
    sender = build.get("Deployment", "herald-sender")
    # A `replicas` in the manifest would fight the autoscaler on every apply.
    assert "replicas" not in sender["spec"]
    hpas, scaled = build.all("HorizontalPodAutoscaler"), build.all("ScaledObject")
    if build.name == "prod+keda":
        assert hpas == []
        (scaled_object,) = scaled
        assert scaled_object["spec"]["scaleTargetRef"]["name"] == "herald-sender"
        (queue,) = [t for t in scaled_object["spec"]["triggers"] if t["type"] == "rabbitmq"]
        assert queue["metadata"]["queueName"] == "herald.deliver"
    else:
        assert scaled == []
        (hpa,) = hpas
        assert hpa["spec"]["scaleTargetRef"]["name"] == "herald-sender"
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
