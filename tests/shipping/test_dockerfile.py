"""The Dockerfile: hadolint-clean, a frozen uv sync, a non-root runtime without build tools,
and an image whose command, scripts, environment and port agree with the code."""

from __future__ import annotations

import fnmatch

from herald_api.settings import ApiSettings

from .conftest import (
    DOCKERFILE,
    DOCKERIGNORE,
    REPO,
    Member,
    Stage,
    command_words,
    run_tool,
    uv_sync_options,
    venv_tool,
)

BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "git", "curl", "wget")


def test_hadolint_reports_nothing() -> None:
    result = run_tool(venv_tool("hadolint"), "--no-color", DOCKERFILE)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert output == ""


def test_every_base_image_is_pinned_by_tag(dockerfile: list[Stage]) -> None:
    aliases = {stage.name for stage in dockerfile if stage.name}
    for stage in dockerfile:
        if stage.image in aliases:
            continue
        _, _, tag = stage.image.rpartition("/")[2].partition(":")
        assert tag, f"FROM {stage.image}: no tag"
        assert tag != "latest", f"FROM {stage.image}: pin a version, not latest"


def test_uv_sync_is_frozen_without_dev_dependencies(dockerfile: list[Stage]) -> None:
    syncs = [
        options
        for stage in dockerfile
        for run in stage.all("RUN")
        if (options := uv_sync_options(command_words(run.args))) is not None
    ]
    assert syncs, "no RUN uv sync"
    for options in syncs:
        assert "--frozen" in options, f"uv sync {' '.join(options)}: without --frozen"
        assert "--no-dev" in options, f"uv sync {' '.join(options)}: installs dev dependencies"
    # The last sync installs Herald itself as wheels, so the runtime stage needs no sources.
    assert "--no-editable" in syncs[-1]


def test_the_runtime_stage_gets_the_builders_venv_on_its_path(
    dockerfile: list[Stage], runtime_stage: Stage, image_env: dict[str, str]
) -> None:
    builder_env = {k: v for stage in dockerfile[:-1] for k, v in stage.env().items()}
    venv = builder_env.get("UV_PROJECT_ENVIRONMENT")
    assert venv, "the builder does not set UV_PROJECT_ENVIRONMENT (where uv sync installs)"
    # The same path on both sides: the scripts' #! lines name the venv's Python there.
    copied = [
        words
        for copy in runtime_stage.all("COPY")
        if copy.args.startswith("--from=")
        and (words := [w for w in copy.args.split() if not w.startswith("--")]) == [venv, venv]
    ]
    assert copied, f"the runtime stage does not COPY --from the builder's {venv} to {venv}"
    assert image_env["PATH"].split(":")[0] == f"{venv}/bin"
    assert image_env.get("PYTHONUNBUFFERED") == "1"


def test_the_runtime_user_is_not_root_and_has_a_fixed_uid(runtime_stage: Stage) -> None:
    users = runtime_stage.all("USER")
    assert users, "the runtime stage runs as root (no USER)"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit(), f"USER {users[-1].args}: give the numeric UID (runAsNonRoot checks it)"
    assert int(uid) != 0
    created = " ".join(run.args for run in runtime_stage.all("RUN"))
    assert f"--uid {uid}" in created, f"no useradd --uid {uid} in the runtime stage"


def test_the_runtime_stage_installs_no_build_tools(runtime_stage: Stage) -> None:
    for run in runtime_stage.all("RUN"):
        words = command_words(run.args)
        assert "apt-get" not in words or "install" not in words, f"line {run.line}: apt-get"
        for tool in BUILD_TOOLS:
            assert tool not in words, f"line {run.line}: {tool} in the runtime image"


def test_the_default_command_is_the_api(
    default_command: list[str], image_scripts: set[str]
) -> None:
    assert default_command == ["herald-api"]
    assert default_command[0] in image_scripts


def test_containers_listen_on_every_interface(image_env: dict[str, str]) -> None:
    # 127.0.0.1, the settings' default, would be unreachable from outside the container.
    for name in ("HERALD_API_HOST", "HERALD_METRICS_HOST", "HERALD_SIM_HOST"):
        assert image_env.get(name) == "0.0.0.0", name


def test_the_exposed_port_is_the_apis(runtime_stage: Stage, image_env: dict[str, str]) -> None:
    port = int(image_env.get("HERALD_API_PORT") or ApiSettings.model_fields["api_port"].default)
    exposed = {
        int(word.split("/")[0]) for e in runtime_stage.all("EXPOSE") for word in e.args.split()
    }
    assert port in exposed


def test_the_image_holds_every_service_script(
    image_scripts: set[str], members: dict[str, Member]
) -> None:
    """Every console script of services/* and libs/* is in the image (tools/*: developers')."""
    wanted = {
        script
        for member in members.values()
        if member.path.parts[-2] in ("services", "libs")
        for script in member.scripts
    }
    assert wanted - image_scripts == set()


def _ignored(path: str, patterns: list[str]) -> bool:
    """Roughly Docker's rule: a pattern matches the path or one of its parents."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.strip("/").removeprefix("**/")
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
        if any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def test_copied_sources_exist_and_are_not_docker_ignored(dockerfile: list[Stage]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        word
        for stage in dockerfile
        for copy in stage.all("COPY")
        if not copy.args.startswith("--from=")
        for word in copy.args.split()[:-1]
        if not word.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = DOCKERIGNORE.read_text().splitlines()
    for path in (".venv", ".herald", ".git", "test-artifacts", ".pytest_cache", ".mypy_cache"):
        assert _ignored(path, [p for p in patterns if p and not p.startswith("#")]), path
