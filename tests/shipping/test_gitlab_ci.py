""".gitlab-ci.yml: valid for GitLab, running what the README and .ci/run run and installing
nothing the Makefile does not, keeping the test reports, and pushing the image the Dockerfile
builds."""

from __future__ import annotations

import itertools
import re
import shlex
from typing import Any

from .conftest import GITLAB_CI, REPO, Stage, run_tool, venv_tool

CI_RUN = REPO / ".ci" / "run"
SETUP_MACHINE = REPO / "scripts" / "setup_machine.py"
README = REPO / "README.md"


def _jobs(ci: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Jobs with what they extend merged in (one level, as this file uses it)."""
    jobs: dict[str, dict[str, Any]] = {}
    for name, job in ci.items():
        if name.startswith(".") or not isinstance(job, dict) or "script" not in job:
            continue
        merged: dict[str, Any] = {}
        extends = job.get("extends", [])
        for parent in [extends] if isinstance(extends, str) else extends:
            merged.update(ci[parent])
        merged.update(job)
        jobs[name] = merged
    return jobs


def _lines(job: dict[str, Any], key: str = "script") -> list[str]:
    value = job.get(key, [])
    return [value] if isinstance(value, str) else [str(line) for line in value]


def _in_stage(ci: dict[str, Any], stage: str) -> dict[str, dict[str, Any]]:
    return {name: job for name, job in _jobs(ci).items() if job.get("stage", "test") == stage}


def readme_command(target: str) -> str:
    """The README's `make <target>` line of its first shell block, without the comment."""
    block = README.read_text().split("```sh", 1)[1].split("```", 1)[0]
    for line in block.splitlines():
        command = line.split("#", 1)[0].strip()
        if command.split()[:2] == ["make", target]:
            return command
    raise AssertionError(f"the README's first block has no make {target}")


def test_gitlab_ci_is_valid_against_its_schema() -> None:
    result = run_tool(
        venv_tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", GITLAB_CI
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stages_are_lint_test_build(gitlab_ci: dict[str, Any]) -> None:
    assert gitlab_ci["stages"] == ["lint", "test", "build"]
    for stage in gitlab_ci["stages"]:
        assert _in_stage(gitlab_ci, stage), f"no job in stage {stage}"


def test_the_lint_job_runs_make_lint_and_hadolint(gitlab_ci: dict[str, Any]) -> None:
    lines = [line for job in _in_stage(gitlab_ci, "lint").values() for line in _lines(job)]
    assert "make lint" in lines
    assert any("hadolint Dockerfile" in line for line in lines)


def test_the_test_job_runs_the_readmes_test_command(gitlab_ci: dict[str, Any]) -> None:
    command = readme_command("test")
    jobs = _in_stage(gitlab_ci, "test")
    assert any(
        shlex.split(line)[: len(command.split())] == command.split()
        for job in jobs.values()
        for line in _lines(job)
    ), f"no test job runs {command!r}"


def _install_commands(lines: list[str]) -> list[str]:
    """The lines that install software: apt-get install, pip install, a uv downloaded."""
    found = []
    for line in lines:
        words = shlex.split(line.split(">", 1)[0], comments=True)
        pairs = set(itertools.pairwise(words))
        if pairs & {("apt-get", "install"), ("apt", "install"), ("pip", "install")} or any(
            "astral.sh" in word for word in words
        ):
            found.append(line)
    return found


def test_ci_run_only_runs_make_lint_and_make_test() -> None:
    """The Makefile installs what a clean machine lacks (scripts/setup_machine.py); .ci/run keeps
    no install list of its own that could drift from it."""
    commands = [
        line.strip()
        for line in CI_RUN.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "make lint", "make test"]


def test_the_lint_and_test_jobs_install_nothing_themselves(gitlab_ci: dict[str, Any]) -> None:
    """As on a developer's fresh machine, `make lint` / `make test` install uv and the Debian
    packages: a job's own install list would hide a gap in the Makefile's."""
    for stage in ("lint", "test"):
        for name, job in _in_stage(gitlab_ci, stage).items():
            lines = _lines(job, "before_script") + _lines(job)
            assert not _install_commands(lines), f"{name} installs {_install_commands(lines)}"
            assert any(line.startswith(f"make {stage}") for line in _lines(job)), name


def test_the_test_job_keeps_the_junit_report_and_the_screenshots(
    gitlab_ci: dict[str, Any],
) -> None:
    for name, job in _in_stage(gitlab_ci, "test").items():
        match = next(
            (m for line in _lines(job) if (m := re.search(r"--junitxml=(\S+?)\"?$", line))),
            None,
        )
        assert match, f"{name}: pytest writes no junit report"
        artifacts = job["artifacts"]
        assert artifacts["reports"]["junit"] == match[1]
        assert artifacts.get("when") == "always"  # a failed run is the one worth reading
        paths = artifacts["paths"]
        # tests/e2e/test_admin_ui.py writes its screenshots to test-artifacts/browser/.
        assert any("test-artifacts/browser/".startswith(path.rstrip("/") + "/") for path in paths)


def test_the_build_job_pushes_the_commit_and_latest_on_the_default_branch(
    gitlab_ci: dict[str, Any], dockerfile: list[Stage]
) -> None:
    jobs = _in_stage(gitlab_ci, "build")
    assert len(jobs) == 1
    job = next(iter(jobs.values()))
    image = job["variables"]["IMAGE"]
    assert image == "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA"
    script = "\n".join(_lines(job))
    assert "docker build" in script
    assert '--tag "$IMAGE" .' in script
    assert 'docker push "$IMAGE"' in script
    latest = re.search(
        r'if \[ "\$CI_COMMIT_BRANCH" = "\$CI_DEFAULT_BRANCH" \]; then(.*?)fi', script, re.S
    )
    assert latest, "latest is not limited to the default branch"
    assert 'docker push "$CI_REGISTRY_IMAGE:latest"' in latest[1]


def test_make_and_the_image_use_the_same_uv(dockerfile: list[Stage]) -> None:
    """The uv that `make` installs (CI's too) is the one the image is built with."""
    pinned = re.search(r'^UV_VERSION = "(.+)"$', SETUP_MACHINE.read_text(), re.M)
    assert pinned, "scripts/setup_machine.py pins no UV_VERSION"
    uv_image = next(stage.image for stage in dockerfile if "astral-sh/uv" in stage.image)
    assert uv_image.rsplit(":", 1)[1] == pinned[1]
