"""The shipping files as the tools read them: Dockerfile, docker-compose.yml, .gitlab-ci.yml."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "docker-compose.yml"
GITLAB_CI = REPO / ".gitlab-ci.yml"
# The Herald services of docker-compose.yml are those running the image built from the Dockerfile.
HERALD_IMAGE_BUILD = "."


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.args):
                name, _, value = word.partition("=")
                values[name] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comment lines dropped."""
    stages: list[Stage] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction
        if not pending:
            start = number
        continued = line.endswith("\\")
        pending.append(line.removesuffix("\\").strip())
        if continued:
            continue
        keyword, _, args = " ".join(pending).partition(" ")
        pending = []
        instruction = Instruction(keyword.upper(), args.strip(), start)
        if instruction.keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"Dockerfile line {start}: {keyword} before any FROM"
            stages[-1].instructions.append(instruction)
    return stages


def command_words(args: str) -> list[str]:
    """The words of a shell-form RUN, without its leading --mount/--network flags."""
    words = shlex.split(args)
    while words and words[0].startswith("--"):
        words.pop(0)
    return words


def uv_sync_options(words: list[str]) -> list[str] | None:
    """The options of the `uv sync` in these words (up to `&&`), or None if there is none."""
    for index in range(len(words) - 1):
        if words[index] == "uv" and words[index + 1] == "sync":
            options = words[index + 2 :]
            return options[: options.index("&&")] if "&&" in options else options
    return None


@dataclass(frozen=True)
class Member:
    """One uv workspace member: its distribution name, folder, scripts, workspace dependencies."""

    name: str
    path: Path
    scripts: dict[str, str]
    dependencies: tuple[str, ...]


def _requirement_name(requirement: str) -> str:
    for stop in "<>=!~;[ (":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower()


def workspace_members() -> dict[str, Member]:
    members: dict[str, Member] = {}
    for pyproject in sorted(REPO.glob("*/*/pyproject.toml")):
        if pyproject.parts[-3] not in ("libs", "services", "tools"):
            continue
        project = tomllib.loads(pyproject.read_text())["project"]
        members[project["name"]] = Member(
            name=project["name"],
            path=pyproject.parent,
            scripts=dict(project.get("scripts", {})),
            dependencies=tuple(_requirement_name(r) for r in project.get("dependencies", [])),
        )
    return members


def with_workspace_dependencies(names: set[str], members: Mapping[str, Member]) -> set[str]:
    """`names` and every workspace member they depend on, directly or not."""
    result: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in result:
            continue
        result.add(name)
        todo.extend(dep for dep in members[name].dependencies if dep in members)
    return result


# What README ("In containers") has the operator export before `docker compose up`: the
# values compose interpolates into the file (`${HERALD_API_TOKEN:?…}`).
OPERATOR_SHELL = {"HERALD_API_TOKEN": "5f0c9e2a7b1d4e8f3a6c0b9d2e7f1a4c8b3d6e0f9a2c5b7d"}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[?-])([^}]*))?\}")


class MissingVariable(Exception):
    """Compose refuses to start: a `${NAME:?message}` without NAME in the shell."""


def interpolate(value: str, shell: Mapping[str, str]) -> str:
    """Compose's interpolation of `${NAME}`, `${NAME:-default}` and `${NAME:?message}`."""

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match[1], match[2], match[3]
        found = shell.get(name)
        if operator in (":?", "?") and not found:
            raise MissingVariable(f"{name}: {argument}")
        if operator in (":-", "-") and not found:
            return argument
        return found or ""

    return _INTERPOLATION.sub(replace, value)


def raw_environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A compose service's `environment` as written, mapping or list form, values as strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def environment_of(
    service: Mapping[str, Any], shell: Mapping[str, str] = OPERATOR_SHELL
) -> dict[str, str]:
    """A compose service's `environment` as its container gets it, interpolated from `shell`."""
    return {name: interpolate(value, shell) for name, value in raw_environment_of(service).items()}


def published_ports(service: Mapping[str, Any]) -> list[tuple[int | None, int]]:
    """(host port, container port) of each `ports` entry, short or long syntax."""
    ports: list[tuple[int | None, int]] = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            ports.append((int(published) if published else None, int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].rsplit(":", 2)
        container = int(parts[-1])
        host = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        ports.append((host, container))
    return ports


def bind_mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of each bind mount from the repository."""
    mounts: dict[str, Path] = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            source, target = entry.get("source", ""), entry["target"]
        else:
            source, target = str(entry).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (REPO / source).resolve()
    return mounts


def healthcheck_command(service: Mapping[str, Any]) -> list[str]:
    test = service.get("healthcheck", {}).get("test", [])
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(word) for word in test]


def venv_tool(name: str) -> str:
    """A tool installed beside this Python (the workspace's dev dependencies)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    assert found, f"{name} is not installed: it is a dev dependency (uv sync --frozen)"
    return found


def run_tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def dockerfile() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="session")
def runtime_stage(dockerfile: list[Stage]) -> Stage:
    """The stage the image is made of: the last one."""
    return dockerfile[-1]


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


@pytest.fixture(scope="session")
def herald_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The compose services that run Herald's image."""
    found = {
        name: service
        for name, service in services.items()
        if str(service.get("build", "")) == HERALD_IMAGE_BUILD
        or (isinstance(service.get("build"), dict) and service["build"].get("context") == ".")
    }
    assert found, "no compose service builds the Dockerfile"
    return found


@pytest.fixture(scope="session")
def members() -> dict[str, Member]:
    return workspace_members()


@pytest.fixture(scope="session")
def image_packages(dockerfile: list[Stage], members: dict[str, Member]) -> set[str]:
    """The workspace members the Dockerfile's `uv sync --package …` installs, with their deps.

    Every sync must name the same packages: the first one (--no-install-workspace) lays down
    their third-party dependencies, the last one installs them.
    """
    named_by_sync = [
        {options[i + 1] for i, word in enumerate(options) if word == "--package"}
        for stage in dockerfile
        for run in stage.all("RUN")
        if (options := uv_sync_options(command_words(run.args))) is not None
    ]
    assert named_by_sync, "the Dockerfile runs no uv sync"
    named = named_by_sync[-1]
    assert named, "the Dockerfile's uv sync names no --package"
    for other in named_by_sync[:-1]:
        assert other == named, f"uv sync --package differ: {sorted(other ^ named)}"
    unknown = named - set(members)
    assert not unknown, f"uv sync --package names no workspace member: {sorted(unknown)}"
    return with_workspace_dependencies(named, members)


@pytest.fixture(scope="session")
def image_scripts(image_packages: set[str], members: dict[str, Member]) -> set[str]:
    """The console scripts the image has on its PATH."""
    return {script for name in image_packages for script in members[name].scripts}


@pytest.fixture(scope="session")
def default_command(runtime_stage: Stage) -> list[str]:
    cmds = runtime_stage.all("CMD")
    assert cmds, "the runtime stage has no CMD"
    return list(yaml.safe_load(cmds[-1].args))  # the exec form is a JSON array


@pytest.fixture(scope="session")
def command_of(
    herald_services: dict[str, dict[str, Any]], default_command: list[str]
) -> Callable[[str], list[str]]:
    """The command a Herald service runs: its `command`, else the image's CMD."""

    def command(name: str) -> list[str]:
        value = herald_services[name].get("command")
        if value is None:
            return default_command
        return shlex.split(value) if isinstance(value, str) else [str(word) for word in value]

    return command


@pytest.fixture(scope="session")
def image_env(runtime_stage: Stage) -> dict[str, str]:
    return runtime_stage.env()


@pytest.fixture(scope="session")
def env_in_container(
    herald_services: dict[str, dict[str, Any]], image_env: dict[str, str]
) -> Callable[[str], dict[str, str]]:
    """The HERALD_* environment a Herald service's process sees: the image's, then compose's."""

    def env(name: str) -> dict[str, str]:
        merged = {**image_env, **environment_of(herald_services[name])}
        return {key: value for key, value in merged.items() if key.startswith("HERALD_")}

    return env


@pytest.fixture(scope="session")
def gitlab_ci() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(GITLAB_CI.read_text())
    return data
