from pathlib import Path

import pytest

from herald_devstack.errors import DevstackError
from herald_devstack.plan import plan_services, plan_stack

CWD = Path("/repo")


def test_empty_environment_starts_everything_on_default_ports() -> None:
    plan = plan_stack({}, CWD)

    assert (plan.start_postgres, plan.start_rabbitmq, plan.start_simulator) == (True, True, True)
    assert plan.start_smtp_sink is True
    assert plan.state_dir == CWD / ".herald"
    assert plan.mail_dir == CWD / ".herald" / "mail"
    assert plan.port("HERALD_DEV_SMTP_PORT") == 8025
    assert plan.port("HERALD_DEV_PG_PORT") == 5433
    assert plan.port("HERALD_DEV_AMQP_PORT") == 5673
    assert plan.port("HERALD_DEV_RABBITMQ_MANAGEMENT_PORT") == 15673
    assert plan.port("HERALD_DEV_RABBITMQ_PROMETHEUS_PORT") == 15693
    assert plan.api_url == "http://127.0.0.1:8000"
    assert plan.simulator_url == "http://127.0.0.1:8001"


@pytest.mark.parametrize(
    ("variable", "flag"),
    [
        ("HERALD_DATABASE_URL", "start_postgres"),
        ("HERALD_AMQP_URL", "start_rabbitmq"),
        ("HERALD_PROVIDER_URL", "start_simulator"),
        ("HERALD_SMTP_HOST", "start_smtp_sink"),
    ],
)
def test_a_given_url_means_that_server_is_not_started(variable: str, flag: str) -> None:
    plan = plan_stack({variable: "scheme://elsewhere"}, CWD)

    flags = {"start_postgres", "start_rabbitmq", "start_simulator", "start_smtp_sink"}
    assert getattr(plan, flag) is False
    assert all(getattr(plan, other) for other in flags - {flag})


def test_overrides() -> None:
    plan = plan_stack(
        {
            "HERALD_DEV_STATE_DIR": "state",
            "HERALD_DEV_PG_PORT": "6000",
            "HERALD_API_HOST": "0.0.0.0",
            "HERALD_API_PORT": "9000",
            "HERALD_SENDER_REPLICAS": "3",
        },
        CWD,
    )

    assert plan.state_dir == CWD / "state"
    assert plan.port("HERALD_DEV_PG_PORT") == 6000
    assert plan.api_url == "http://127.0.0.1:9000"
    assert [s.name for s in plan_services(plan)] == [
        "api-1",
        "scheduler-1",
        "sender-1",
        "sender-2",
        "sender-3",
        "reporter-1",
    ]
    assert plan_services(plan)[0].wait_http == "http://127.0.0.1:9000/healthz"


def metrics_ports(env: dict[str, str]) -> dict[str, str]:
    return {
        spec.name: dict(spec.env)["HERALD_METRICS_PORT"]
        for spec in plan_services(plan_stack(env, CWD))
        if spec.env
    }


def test_worker_metrics_ports_are_where_prometheus_yml_expects_them_by_default() -> None:
    assert metrics_ports({}) == {
        "scheduler-1": "9101",
        "sender-1": "9102",
        "sender-2": "9103",
        "reporter-1": "9109",
    }


def test_worker_metrics_ports_move_with_their_base() -> None:
    # Two stacks on one host: the second moves its workers' /metrics too, not only the API.
    assert metrics_ports({"HERALD_DEV_METRICS_PORT": "19101"}) == {
        "scheduler-1": "19101",
        "sender-1": "19102",
        "sender-2": "19103",
        "reporter-1": "19109",
    }


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_bad_port_is_refused_with_its_name(value: str) -> None:
    with pytest.raises(DevstackError, match="HERALD_DEV_AMQP_PORT"):
        plan_stack({"HERALD_DEV_AMQP_PORT": value}, CWD)


@pytest.mark.parametrize("name", ["HERALD_API_TOKEN", "HERALD_ADMIN_SESSION_SECRET"])
@pytest.mark.parametrize(
    ("value", "reason"), [("s3cr3t", "too short"), ("change-me-" * 4, "placeholder")]
)
def test_a_weak_given_secret_is_refused_before_anything_starts(
    name: str, value: str, reason: str
) -> None:
    with pytest.raises(DevstackError, match=f"^{name}: .*{reason}") as raised:
        plan_stack({name: value}, CWD)

    assert value not in str(raised.value)


def test_a_strong_given_secret_is_taken() -> None:
    plan_stack({"HERALD_API_TOKEN": "x" * 16 + "9f3a" * 8}, CWD)
