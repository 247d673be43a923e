"""Running server binaries as an unprivileged system user when we are root."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Sequence
from pathlib import Path

from herald_devstack.errors import PermissionProblemError


def is_root() -> bool:
    return os.geteuid() == 0


def as_user(argv: Sequence[str], user: str | None) -> list[str]:
    """Prefix `argv` so it runs as `user` (None: as ourselves)."""
    if user is None:
        return list(argv)
    # runuser, unlike su, needs no password and no PAM session from root, and keeps argv intact.
    return ["runuser", "-u", user, "--", *argv]


def chown_tree(path: Path, user: str) -> None:
    """Give `path` and everything below it to `user` (and its primary group)."""
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def check_traversable(path: Path, user: str) -> None:
    """Raise PermissionProblemError naming the first parent of `path` that `user` cannot enter."""
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    for parent in reversed(path.resolve().parents):
        info = parent.stat()
        if info.st_uid == entry.pw_uid:
            allowed = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid in groups:
            allowed = bool(info.st_mode & stat.S_IXGRP)
        else:
            allowed = bool(info.st_mode & stat.S_IXOTH)
        if not allowed:
            owner = _name_of_uid(info.st_uid)
            group = _name_of_gid(info.st_gid)
            raise PermissionProblemError(
                f"{path} is not reachable by the {user!r} user: its parent {parent} "
                f"(owner {owner}:{group}, mode {stat.filemode(info.st_mode)}) cannot be entered. "
                f"We run as root and PostgreSQL refuses to run as root, so the server runs as "
                f"{user!r} and needs every parent directory to be traversable: "
                f"use a directory elsewhere or `chmod o+x {parent}`."
            )


def _name_of_uid(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _name_of_gid(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
