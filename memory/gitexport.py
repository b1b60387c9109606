"""Publish kernels as commits on a git branch, without touching anyone's checkout.

The target is often the user's own repository, with work in progress in it. So everything
goes through git plumbing: blobs (hash-object), trees (mktree), a commit (commit-tree) and
a compare-and-swap ref update (update-ref). The working tree, the index and HEAD are never
read or written, and a branch that is checked out anywhere is refused, because moving it
would change what the user's HEAD points at.
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

import git

ZERO_SHA = "0" * 40
DEFAULT_IDENTITY = ("kscout", "kscout@localhost")


class GitExportError(RuntimeError):
    """The export could not be done; the message names the repository and the reason."""


def export_kernel(repo_path: Path, branch: str, files: dict[str, str], message: str,
                  create: bool = True) -> str:
    """Commit `files` (relative path -> text) as the whole tree of a new commit on `branch`.

    The commit's parent is the branch's current tip, if the branch exists. A missing
    `repo_path` is initialised as a new repository when `create` is true. Returns the sha of
    the new commit.
    """
    if not files:
        raise GitExportError(f"nothing to export to {Path(repo_path)}: no files given")
    return _write_branch(Path(repo_path), branch, [(files, message)], on_tip=True, create=create)


def export_lineage(repo_path: Path, branch: str, steps: list[tuple[dict[str, str], str]],
                   create: bool = True) -> str:
    """Make `branch` a chain of commits, one per step (files, message), oldest first: the history
    of how a kernel was reached. The branch is replaced (its old tip compared-and-swapped), since
    a ranking branch follows the ranking; nothing else in the repository is touched."""
    if not steps:
        raise GitExportError(f"nothing to export to {Path(repo_path)}: no steps given")
    return _write_branch(Path(repo_path), branch, steps, on_tip=False, create=create)


def _write_branch(repo_path: Path, branch: str, steps: list[tuple[dict[str, str], str]], on_tip: bool,
                  create: bool) -> str:
    """Commit the steps as a chain, the first on the branch's tip (on_tip) or on nothing, then move
    the branch to the last with a compare-and-swap: it fails if someone else moved the branch
    since we read its tip. Returns the new tip's sha."""
    specs = [(_nest(files), message) for files, message in steps]   # validate before touching the disk
    ref = f"refs/heads/{branch}"
    try:
        git.Git().check_ref_format(ref)
    except git.GitCommandError:
        raise GitExportError(f"{branch!r} is not a valid branch name (repository {repo_path})") from None
    repo = _open_repo(repo_path, create)
    _refuse_checked_out(repo, ref, repo_path)
    old = _tip(repo, ref)
    parent = old if on_tip else None
    try:
        for spec, message in specs:
            args = [_write_tree(repo, spec), "-m", message] + (["-p", parent] if parent else [])
            parent = repo.git.commit_tree(*args, env=_identity_env(repo))
        repo.git.update_ref(ref, parent, old or ZERO_SHA, "-m", f"kscout export: {specs[-1][1].splitlines()[0]}")
    except git.GitCommandError as e:
        raise GitExportError(f"could not write {branch!r} in {repo_path}: {e.stderr.strip()}") from e
    return parent


def _open_repo(path: Path, create: bool) -> git.Repo:
    if not path.exists():
        if not create:
            raise GitExportError(f"export repository {path} does not exist (and create=False)")
        path.mkdir(parents=True)
        repo = git.Repo.init(path)
        # Only our own new repository gets a configured identity; a user's repo never does.
        if not _has_identity(repo):
            with repo.config_writer("repository") as cfg:
                cfg.set_value("user", "name", DEFAULT_IDENTITY[0])
                cfg.set_value("user", "email", DEFAULT_IDENTITY[1])
        return repo
    try:
        return git.Repo(path)   # the path itself must be a repository, not a folder inside one
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitExportError(f"{path} exists but is not a git repository") from None


def _refuse_checked_out(repo: git.Repo, ref: str, repo_path: Path) -> None:
    """Moving a branch that a worktree has checked out would rewrite that user's HEAD."""
    porcelain = repo.git.worktree("list", "--porcelain")
    for line in porcelain.splitlines():
        if line == f"branch {ref}":
            raise GitExportError(
                f"branch {ref.removeprefix('refs/heads/')!r} is checked out in {repo_path} "
                "(or one of its worktrees); export to another branch")


def _tip(repo: git.Repo, ref: str) -> str | None:
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}")
    except git.GitCommandError:
        return None


def _nest(files: dict[str, str]) -> dict:
    """{"a/b.cpp": text} -> {"a": {"b.cpp": text}}, rejecting paths that escape the tree."""
    root: dict = {}
    for name, text in files.items():
        parts = PurePosixPath(name).parts
        if (not parts or PurePosixPath(name).is_absolute() or "\\" in name or "\n" in name
                or any(p in ("", ".", "..", ".git") for p in parts)):
            raise GitExportError(f"invalid path in export: {name!r}")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise GitExportError(f"path {name!r} conflicts with a file of the same name")
        if parts[-1] in node:
            raise GitExportError(f"path {name!r} given twice or conflicts with a folder")
        node[parts[-1]] = text
    return root


def _write_tree(repo: git.Repo, tree: dict) -> str:
    """Write blobs and (sub)trees bottom-up into the object store; return the tree sha."""
    lines = []
    for name, value in sorted(tree.items()):
        if isinstance(value, dict):
            lines.append(f"040000 tree {_write_tree(repo, value)}\t{name}")
        else:
            lines.append(f"100644 blob {_plumb(repo, 'hash_object', value, '-w', '--stdin')}\t{name}")
    return _plumb(repo, "mktree", "\n".join(lines) + "\n")


def _plumb(repo: git.Repo, command: str, stdin: str, *args: str) -> str:
    """Run a plumbing command with text on stdin (gitpython needs a real file for istream)."""
    with tempfile.TemporaryFile() as f:
        f.write(stdin.encode())
        f.seek(0)
        return getattr(repo.git, command)(*args, istream=f).strip()


def _has_identity(repo: git.Repo) -> bool:
    try:
        repo.git.config("user.name")
        repo.git.config("user.email")
        return True
    except git.GitCommandError:
        return False


def _identity_env(repo: git.Repo) -> dict[str, str]:
    """commit-tree needs an author; lend one through the environment, never via config."""
    if _has_identity(repo):
        return {}
    name, email = DEFAULT_IDENTITY
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}

