"""Migrations run while the previous release still serves (deploy/k8s runs the Job before the
new pods, and the old ones keep going meanwhile): every schema change must leave the previous
code working. Each upgrade() is read as code and held to the expand-only rule: create tables,
indexes and columns that old code can ignore; never drop, rename or tighten what it uses.
A step beyond that must be listed below with the reason it is safe."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import herald_common.migrations.versions as versions

VERSIONS = Path(versions.__file__).parent
MIGRATIONS = sorted(VERSIONS.glob("0*.py"))

# Operations old code never notices.
EXPANDING = {"create_table", "create_index", "add_column", "f"}
# (revision file, operation): reviewed steps beyond expanding, with why old code survives.
REVIEWED = {
    # Raw SQL: the counter tables' triggers and their backfill (new tables, new triggers).
    ("0002_message_counts.py", "execute"),
    ("0003_throttle_and_pause.py", "execute"),
    # The status check is replaced by a wider one (adds 'paused'): every old status still passes.
    ("0003_throttle_and_pause.py", "drop_constraint"),
    ("0003_throttle_and_pause.py", "create_check_constraint"),
    # The counters' key gains the shard (default 0): the old triggers' upserts still match.
    ("0004_counter_shards.py", "drop_constraint"),
    ("0004_counter_shards.py", "create_primary_key"),
    # The delete trigger's function gains a guard that only retention's transactions set.
    ("0008_lost_jobs.py", "execute"),
}


def _upgrade_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    (upgrade,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"]
    return [
        node
        for node in ast.walk(upgrade)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "op"
    ]


def test_there_are_migrations_to_check() -> None:
    assert len(MIGRATIONS) >= 7


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_upgrade_only_expands_the_schema(path: Path) -> None:
    for call in _upgrade_calls(path):
        assert isinstance(call.func, ast.Attribute)
        operation = call.func.attr
        if operation in EXPANDING:
            continue
        assert (path.name, operation) in REVIEWED, (
            f"{path.name}: op.{operation} may break the release still serving during the "
            "migration; split it (expand now, contract in a later release) or review it here"
        )


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: p.name)
def test_new_columns_are_nullable_or_have_a_default(path: Path) -> None:
    """Old code inserts rows without the new column: NOT NULL needs a server default."""
    for call in _upgrade_calls(path):
        assert isinstance(call.func, ast.Attribute)
        if call.func.attr != "add_column":
            continue
        column = call.args[1]
        assert isinstance(column, ast.Call)
        keywords = {k.arg: k.value for k in column.keywords}
        not_null = (
            isinstance(keywords.get("nullable"), ast.Constant) and not keywords["nullable"].value
        )  # type: ignore[attr-defined]
        assert not not_null or "server_default" in keywords, (
            f"{path.name}: a NOT NULL column without a server default breaks old inserts"
        )


def test_the_rules_catch_a_drop_and_a_bare_not_null_column(tmp_path: Path) -> None:
    probe = tmp_path / "0099_probe.py"
    probe.write_text("def upgrade():\n    op.drop_column('client', 'tag')\n")
    with pytest.raises(AssertionError, match=r"op\.drop_column"):
        test_upgrade_only_expands_the_schema(probe)
    probe.write_text(
        "def upgrade():\n    op.add_column('client', sa.Column('x', sa.Text(), nullable=False))\n"
    )
    with pytest.raises(AssertionError, match="server default"):
        test_new_columns_are_nullable_or_have_a_default(probe)
