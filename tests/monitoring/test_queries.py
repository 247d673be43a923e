"""Every metric that a dashboard query or an alert names is one that something really exports.

Herald's metrics are read from prometheus_client's default REGISTRY after importing every
service's metrics module (what their /metrics endpoints serve); RabbitMQ's are scraped from a
real broker's rabbitmq_prometheus endpoint after declaring Herald's topology on a fresh vhost;
`up` is Prometheus' own. Names are pulled out of the PromQL by a small tokenizer (tested below),
not by guessing with a regular expression over the whole text.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import pytest_asyncio
import yaml
from prometheus_client import REGISTRY, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from herald_common.rules.backoff import retry_tiers
from herald_common.rules.replies import Verdict
from herald_common.settings import RetrySettings
from herald_common.statuses import MailingState, MessageStatus
from herald_common.topology import declare_topology

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "deploy" / "monitoring" / "prometheus.yml"

HERALD_METRIC_MODULES = (
    "herald_api.metrics",
    "herald_scheduler.metrics",
    "herald_sender.metrics",
    "herald_reporter.metrics",
    "herald_common.metrics",
)
# Series that Prometheus itself writes for every target.
PROMETHEUS_OWN = {"up": frozenset()}
# Labels every scraped series gets from its target.
TARGET_LABELS = frozenset({"job", "instance"})

# ------------------------------------------------------------------------- PromQL tokenizer

_TOKEN = re.compile(
    r"""
      (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
    | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<identifier>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<operator>=~|!~|!=|==|>=|<=|[-+*/%^=<>{}()\[\],@:])
    """,
    re.VERBOSE,
)
AGGREGATIONS = frozenset(
    {
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    }
)  # fmt: skip
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = GROUPING | {"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"}
MATCH_OPERATORS = frozenset({"=", "!=", "=~", "!~"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str | None
    matchers: tuple[Matcher, ...] = field(default=())


def tokenize(expr: str) -> list[Token]:
    """PromQL tokens, without spaces and comments; Grafana variables are tokens of their own."""
    tokens, position, in_brackets = [], 0, False
    while position < len(expr):
        if in_brackets and expr[position] == ":":  # [15m:1m], not an identifier ":1m"
            tokens.append(Token("operator", ":"))
            position += 1
            continue
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[position : position + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, match.group()))
            in_brackets = {"[": True, "]": False}.get(match.group(), in_brackets)
        position = match.end()
    return tokens


def _unquote(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), literal[1:-1])


def _skip_parentheses(tokens: list[Token], start: int) -> int:
    """The index after the ")" closing the "(" at `start`."""
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index].kind == "operator":
            depth += {"(": 1, ")": -1}.get(tokens[index].text, 0)
        if depth == 0:
            return index + 1
    raise ValueError("unbalanced parentheses")


def _matchers(tokens: list[Token], start: int) -> tuple[tuple[Matcher, ...], int]:
    """The label matchers of the "{...}" at `start`, and the index after its "}"."""
    matchers, index = [], start + 1
    while tokens[index].text != "}":
        token = tokens[index]
        if token.kind == "string":  # {"metric_name", ...} (Prometheus 3)
            matchers.append(Matcher("__name__", "=", _unquote(token.text)))
            index += 1
        elif token.kind == "identifier":
            op, value = tokens[index + 1], tokens[index + 2]
            if op.text not in MATCH_OPERATORS or value.kind != "string":
                raise ValueError(f"bad label matcher after {token.text!r}")
            matchers.append(Matcher(token.text, op.text, _unquote(value.text)))
            index += 3
        else:
            raise ValueError(f"unexpected {token.text!r} in a series selector")
        if tokens[index].text == ",":
            index += 1
    return tuple(matchers), index + 1


def selectors(expr: str) -> list[Selector]:
    """Every series selector of a PromQL expression, with its metric name and label matchers.

    An identifier is a metric name unless it is a keyword, a function or aggregation (followed by
    "(" or by/without), a label inside "{...}", or a label of a by/without/on/ignoring/group_x
    list.
    """
    tokens = tokenize(expr)
    found, index = [], 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1].text if index + 1 < len(tokens) else None
        if token.kind == "identifier":
            word = token.text.lower()
            if word in GROUPING and following == "(":
                index = _skip_parentheses(tokens, index + 1)
            elif (
                word in KEYWORDS
                or following == "("
                or (token.text in AGGREGATIONS and following in GROUPING)
            ):
                index += 1
            elif following == "{":
                matchers, index = _matchers(tokens, index + 1)
                found.append(Selector(token.text, matchers))
            else:
                found.append(Selector(token.text))
                index += 1
        elif token.text == "{":
            matchers, index = _matchers(tokens, index)
            names = [m.value for m in matchers if m.label == "__name__" and m.op == "="]
            found.append(Selector(names[0] if names else None, matchers))
        else:
            index += 1
    return found


def metric_names(expr: str) -> set[str]:
    return {selector.metric for selector in selectors(expr) if selector.metric}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (status) (rate(herald_message_transitions_total{status=~"sent|failed"}[1m]))',
            {"herald_message_transitions_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le, route) "
            "(rate(herald_api_request_duration_seconds_bucket[$__rate_interval])))",
            {"herald_api_request_duration_seconds_bucket"},
        ),
        ('sum(up{job="herald-sender"}) == 0 or absent(up{job="herald-sender"})', {"up"}),
        (
            'max(a) > max(a offset 15m) and on() b{queue=~"herald\\\\.retry\\\\..*"}\n'
            "# sum(commented_out)\n  unless deriv(c[15m:1m]) > bool 0 AND inf < nan",
            {"a", "b", "c"},
        ),
        ('{__name__="foo", on="x"} / ignoring(tier) group_left bar', {"foo", "bar"}),
        ("sum without (instance) (foo) * on(a) group_right(b) baz", {"foo", "baz"}),
        ("sum(x) by (job) / count by (job) (y @ end())", {"x", "y"}),
        (
            'count_values("rate(not_a_metric)", foo) + '
            'label_replace(qux, "dst", "$1", "src", "(.*)") > 1e3',
            {"foo", "qux"},
        ),
    ],
)
def test_metric_names_are_extracted_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_selectors_carry_their_matchers() -> None:
    expr = 'sum(b{queue=~"herald\\\\.retry\\\\..*", vhost!="x"}) + c'
    assert selectors(expr) == [
        Selector("b", (Matcher("queue", "=~", r"herald\.retry\..*"), Matcher("vhost", "!=", "x"))),
        Selector("c"),
    ]


def test_bad_promql_is_reported() -> None:
    with pytest.raises(ValueError, match="cannot read"):
        selectors("rate(x[5m]) ? 1")
    with pytest.raises(ValueError, match="label matcher"):
        selectors('x{job=="a"}')


# ------------------------------------------------------------------------- what is exported


@dataclass
class Exports:
    """Sample names a source exports, each with the label names its series carry."""

    labels: dict[str, frozenset[str]]
    queues: frozenset[str] = frozenset()  # RabbitMQ only: queue label values


def _sample_names(name: str, kind: str) -> list[str]:
    suffixes = {
        "counter": ["_total", "_created"],
        "histogram": ["_bucket", "_sum", "_count", "_created"],
        "gaugehistogram": ["_bucket", "_gsum", "_gcount"],
        "summary": ["", "_sum", "_count", "_created"],
        "info": ["_info"],
    }.get(kind, [""])
    return [name + suffix for suffix in suffixes]


def _exports_of(families: list[Metric], declared_labels: dict[str, frozenset[str]]) -> Exports:
    labels: dict[str, set[str]] = {}
    for family in families:
        for name in _sample_names(family.name, family.type):
            extra = {"le"} if name.endswith("_bucket") else set()
            labels.setdefault(name, set()).update(declared_labels.get(family.name, set()) | extra)
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return Exports({name: frozenset(names) for name, names in labels.items()})


@pytest.fixture(scope="module")
def herald_exports() -> Exports:
    """What the services' /metrics serve: their metrics modules in the default REGISTRY
    (plus the process_* and python_* collectors that every process registers)."""
    declared: dict[str, frozenset[str]] = {}
    for module_name in HERALD_METRIC_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            # Label names are only visible on the metric objects (a labelled metric with no
            # children yet has no samples in REGISTRY.collect()).
            if isinstance(value, MetricWrapperBase):
                declared[value._name] = frozenset(value._labelnames)
    exports = _exports_of(list(REGISTRY.collect()), declared)
    assert "herald_provider_calls_total" in exports.labels, "services' metrics not registered?"
    return exports


def _scrape(url: str) -> list[Metric]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return list(text_string_to_metric_families(response.read().decode()))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def rabbitmq_exports(rabbitmq_server: Any) -> AsyncIterator[Exports]:
    """rabbitmq_prometheus' series, with per-queue ones for Herald's real topology."""
    url = getattr(rabbitmq_server, "prometheus_url", None) or os.environ.get(
        "HERALD_TEST_RABBITMQ_PROMETHEUS_URL"
    )
    if not url:
        pytest.skip(
            f"{rabbitmq_server!r} has no known rabbitmq_prometheus endpoint "
            "(for an external broker set HERALD_TEST_RABBITMQ_PROMETHEUS_URL)"
        )
    vhost = f"monitoring-{uuid.uuid4().hex[:12]}"
    rabbitmq_server.create_vhost(vhost)
    try:
        connection = await aio_pika.connect(rabbitmq_server.url(vhost))
        async with connection:
            tiers = retry_tiers(
                RetrySettings.model_fields["retry_base_ms"].default,
                RetrySettings.model_fields["retry_max_ms"].default,
            )
            await declare_topology(await connection.channel(), tiers)
        # RabbitMQ emits queue statistics every 5 s; a loaded machine may need a few rounds.
        deadline = time.monotonic() + 60
        while True:
            families = await asyncio.to_thread(_scrape, url)
            queues = frozenset(
                sample.labels["queue"]
                for family in families
                for sample in family.samples
                if sample.name == "rabbitmq_queue_messages" and sample.labels.get("vhost") == vhost
            )
            # Queues show up at their first statistics emission; wait for the whole topology.
            if len(queues) >= len(tiers) + 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert queues, (
            f"no per-queue series for vhost {vhost} at {url}: "
            "is prometheus.return_per_object_metrics = true?"
        )
        assert len(queues) >= len(tiers) + 3, f"after 60 s only these queues: {sorted(queues)}"
        exports = _exports_of(families, {})
        exports.queues = queues
        yield exports
    finally:
        rabbitmq_server.delete_vhost(vhost)


# ------------------------------------------------------------------- the queries against them


def _vocabularies() -> dict[str, dict[str, frozenset[str]]]:
    """Fixed label vocabularies of Herald's metrics, from the code that sets them."""
    statuses = frozenset(status.value for status in MessageStatus)
    # herald_sender.provider.CallResult.metric_label: a verdict, or how the transport ended.
    outcomes = frozenset(verdict.value for verdict in Verdict) | {"timeout", "connection_error"}
    return {
        "herald_message_transitions": {"status": statuses},
        "herald_active_messages": {"status": statuses},
        "herald_mailings": {"state": frozenset(state.value for state in MailingState)},
        "herald_provider_calls": {"outcome": outcomes},
        "herald_provider_call_duration_seconds": {"outcome": outcomes},
    }


def _family(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count|created)$", "", name)


def _value_problem(matcher: Matcher, vocabulary: frozenset[str]) -> str | None:
    """Why `matcher` cannot select a value of `vocabulary`, or None."""
    value = matcher.value
    if matcher.op in ("=", "!="):
        unknown = [value] if value not in vocabulary else []
    elif re.fullmatch(r"[\w|]+", value):  # a plain alternation: every word must exist
        unknown = [word for word in value.split("|") if word not in vocabulary]
    else:
        unknown = [] if any(re.fullmatch(value, word) for word in vocabulary) else [value]
    if unknown:
        return f"{matcher.label}: {unknown} not in {sorted(vocabulary)}"
    return None


def _check(queries: list[Any], exports: Exports, prefix: str | None) -> list[str]:
    """Problems of the selectors whose metric starts with `prefix` (None: all but rabbitmq_)."""
    vocabularies = _vocabularies()
    problems = []
    for query in queries:
        for selector in selectors(query.expr):
            name = selector.metric
            if name is None:
                problems.append(f"{query.where}: a selector without a metric name")
                continue
            mine = name.startswith(prefix) if prefix else not name.startswith("rabbitmq_")
            if not mine:
                continue
            if name not in exports.labels:
                problems.append(f"{query.where}: {name} is not exported")
                continue
            known = exports.labels[name] | TARGET_LABELS | {"__name__"}
            for matcher in selector.matchers:
                if matcher.label not in known:
                    problems.append(f"{query.where}: {name} has no label {matcher.label!r}")
                    continue
                vocabulary = vocabularies.get(_family(name), {}).get(matcher.label)
                problem = _value_problem(matcher, vocabulary) if vocabulary else None
                if problem:
                    problems.append(f"{query.where}: {name} {problem}")
    return problems


def test_queries_name_metrics_that_herald_exports(
    all_queries: list[Any], herald_exports: Exports
) -> None:
    """Every non-RabbitMQ metric is Herald's (with its labels and label values) or `up`."""
    exports = Exports({**herald_exports.labels, **PROMETHEUS_OWN})
    assert _check(all_queries, exports, None) == []


async def test_queries_name_metrics_that_rabbitmq_exports(
    all_queries: list[Any], rabbitmq_exports: Exports
) -> None:
    """Every rabbitmq_* metric is served per queue by the broker, with the labels used."""
    assert _check(all_queries, rabbitmq_exports, "rabbitmq_") == []


async def test_queue_matchers_select_herald_queues(
    all_queries: list[Any], rabbitmq_exports: Exports
) -> None:
    """queue="..." and queue=~"..." select queues that Herald's topology really declares."""
    problems = []
    for query in all_queries:
        for selector in selectors(query.expr):
            for matcher in selector.matchers:
                if matcher.label != "queue" or matcher.op not in ("=", "=~"):
                    continue
                pattern = matcher.value if matcher.op == "=~" else re.escape(matcher.value)
                if not any(re.fullmatch(pattern, queue) for queue in rabbitmq_exports.queues):
                    problems.append(f"{query.where}: queue{matcher.op}{matcher.value!r}")
    assert problems == [], f"no such queue among {sorted(rabbitmq_exports.queues)}"


def test_job_matchers_select_scrape_jobs(all_queries: list[Any]) -> None:
    """job="..." and job=~"..." select jobs of prometheus.yml (Kubernetes keeps the names)."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {scrape["job_name"] for scrape in config["scrape_configs"]}
    problems = []
    for query in all_queries:
        for selector in selectors(query.expr):
            for matcher in selector.matchers:
                if matcher.label != "job" or matcher.op not in ("=", "=~"):
                    continue
                pattern = matcher.value if matcher.op == "=~" else re.escape(matcher.value)
                if not any(re.fullmatch(pattern, job) for job in jobs):
                    problems.append(f"{query.where}: job{matcher.op}{matcher.value!r}")
    assert problems == [], f"no such job among {sorted(jobs)}"


def test_label_checks_catch_mistakes(herald_exports: Exports) -> None:
    """The checks above do fail on a wrong name, label or label value."""
    exports = Exports({**herald_exports.labels, **PROMETHEUS_OWN})

    @dataclass
    class Q:
        where: str
        expr: str

    bad = [
        Q("name", "rate(herald_provider_calls[5m])"),  # counter without _total
        Q("label", 'herald_outbox_backlog{status="x"}'),
        Q("value", 'herald_active_messages{status="retry"}'),
        Q("alternation", 'herald_provider_calls_total{outcome=~"sent|timeouts"}'),
        Q("regex", 'herald_mailings{state=~"run.*x"}'),
    ]
    problems = _check(bad, exports, None)
    assert [problem.split(":")[0] for problem in problems] == [q.where for q in bad]


def test_every_query_reads_a_metric(all_queries: list[Any]) -> None:
    assert [query.where for query in all_queries if not metric_names(query.expr)] == []
