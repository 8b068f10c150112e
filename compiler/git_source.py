"""A workspace inside a git repository -> what a worker on another host clones to run it: the remote's URL, the
commit checked out, and the workspace's folder relative to the repository's top. `camp check` (E022) and `camp
deploy` (the `git_clone` pull step) ask the same question, with `git` itself (no library: the repository is the
user's, and git is what they push with).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


class GitSourceError(ValueError):
    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class GitSource:
    repository: str  # the remote's URL, as `git remote get-url` gives it
    commit: str  # HEAD's full sha
    folder: str  # the workspace relative to the repository's top, POSIX separators ("." at the top)
    dirty: bool  # the workspace has changes git does not have: they are not what workers run


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        raise GitSourceError("git is not installed here", "install git, or declare a shared folder: "
                             '[deploy] path = "/srv/camp"') from None
    if out.returncode != 0:
        raise GitSourceError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"git {args[0]} failed",
                             "")
    return out.stdout.strip()


def git_source(root: Path, remote: str = "origin") -> GitSource:
    """Raises GitSourceError (with a hint) when the workspace is not in a repository or has no such remote."""
    try:
        top = Path(_git(root, "rev-parse", "--show-toplevel"))
    except GitSourceError:
        raise GitSourceError(f"the workspace {root} is not inside a git repository",
                             "commit the workspace to a repository workers can clone, or declare a shared "
                             'folder: [deploy] path = "/srv/camp"') from None
    try:
        url = _git(root, "remote", "get-url", remote)
    except GitSourceError:
        raise GitSourceError(f"the repository has no remote `{remote}`",
                             f"add it (git remote add {remote} URL) or name another: [deploy] remote = \"...\"") from None
    try:
        commit = _git(root, "rev-parse", "HEAD")
    except GitSourceError:
        raise GitSourceError("the repository has no commit yet", "commit the workspace and push it") from None
    folder = Path(root).resolve().relative_to(top.resolve()).as_posix()
    dirty = bool(_git(root, "status", "--porcelain", "--", "."))
    return GitSource(url, commit, folder or ".", dirty)
