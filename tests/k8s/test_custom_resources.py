"""The custom resources (prometheus-operator, KEDA) against schemas of the fields Herald uses.

kubernetes-validate knows only built-in kinds; these schemas are written from the CRDs'
reference (monitoring.coreos.com/v1, keda.sh/v1alpha1) for the fields used here, and refuse
any other field, so that a typo cannot pass silently.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


STRING = {"type": "string", "minLength": 1}
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)(ms|s|m|h|d|w|y))+)$"}
LABEL_SELECTOR = obj(
    {
        "matchLabels": STRINGS,
        "matchExpressions": {
            "type": "array",
            "items": obj(
                {
                    "key": STRING,
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                ("key", "operator"),
            ),
        },
    }
)
METADATA = obj(
    {"name": STRING, "namespace": STRING, "labels": STRINGS, "annotations": STRINGS},
    ("name", "namespace"),
)


def resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return obj(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


SCHEMAS = {
    "ServiceMonitor": resource(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        obj(
            {
                "jobLabel": STRING,
                "selector": LABEL_SELECTOR,
                "namespaceSelector": obj(
                    {"matchNames": {"type": "array"}, "any": {"type": "boolean"}}
                ),
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": obj(
                        {
                            "port": STRING,
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": DURATION,
                            "scrapeTimeout": DURATION,
                        },
                        ("port",),
                    ),
                },
            },
            ("selector", "endpoints"),
        ),
    ),
    "PrometheusRule": resource(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        obj(
            {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": obj(
                        {
                            "name": STRING,
                            "interval": DURATION,
                            "rules": {
                                "type": "array",
                                "items": obj(
                                    {
                                        "alert": STRING,
                                        "record": STRING,
                                        "expr": STRING,
                                        "for": DURATION,
                                        "labels": STRINGS,
                                        "annotations": STRINGS,
                                    },
                                    ("expr",),
                                ),
                            },
                        },
                        ("name", "rules"),
                    ),
                }
            },
            ("groups",),
        ),
    ),
    "ScaledObject": resource(
        "keda.sh/v1alpha1",
        "ScaledObject",
        obj(
            {
                "scaleTargetRef": obj(
                    {"apiVersion": STRING, "kind": STRING, "name": STRING}, ("name",)
                ),
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": obj(
                    {
                        "horizontalPodAutoscalerConfig": obj(
                            {"behavior": {"type": "object"}, "name": STRING}
                        )
                    }
                ),
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": obj(
                        {
                            "type": {"enum": ["rabbitmq", "cpu", "memory"]},
                            "metricType": {"enum": ["Utilization", "AverageValue", "Value"]},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": obj({"name": STRING, "kind": STRING}, ("name",)),
                        },
                        ("type", "metadata"),
                    ),
                },
            },
            ("scaleTargetRef", "triggers"),
        ),
    ),
    "TriggerAuthentication": resource(
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
        obj(
            {
                "secretTargetRef": {
                    "type": "array",
                    "items": obj({"parameter": STRING, "name": STRING, "key": STRING}),
                }
            },
            ("secretTargetRef",),
        ),
    ),
}
CUSTOM_GROUPS = ("monitoring.coreos.com/", "keda.sh/")


def test_custom_resources_match_their_schemas(build):
    custom = [o for o in build.objects if o["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert custom
    for item in custom:
        assert item["kind"] in SCHEMAS, f"no schema for {item['kind']}"
        jsonschema.validate(item, SCHEMAS[item["kind"]])


def test_keda_reads_the_queue_with_the_broker_secret(builds):
    keda = builds["prod+keda"]
    (auth,) = keda.all("TriggerAuthentication")
    (scaled,) = keda.all("ScaledObject")
    (rabbitmq,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"]
    assert rabbitmq["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert rabbitmq["metadata"]["mode"] in ("QueueLength", "MessageRate")
    assert int(rabbitmq["metadata"]["value"]) > 0
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "host"
    assert ref["key"] in keda.secret(ref["name"])
    # Never down to zero: HeraldSenderDown fires when no sender is up, and a mailing's first
    # messages would wait for a pod to start.
    assert scaled["spec"]["minReplicaCount"] >= 1


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_the_schemas_refuse_a_misspelt_field(builds, kind):
    item = next(o for b in builds.values() for o in b.objects if o["kind"] == kind)
    broken = {**item, "spec": {**item["spec"], "selectr": {}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMAS[kind])
