"""export_kernel against real git repositories, including a user's repo with work in progress."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from memory.gitexport import GitExportError, export_kernel

KERNEL = 'extern "C" void kscout_forward(const float* x, float* y, long n) { /* v1 */ }\n'
KERNEL_V2 = KERNEL.replace("v1", "v2")


def tree_files(commit: git.Commit) -> dict[str, str]:
    return {b.path: b.data_stream.read().decode() for b in commit.tree.traverse() if b.type == "blob"}


@pytest.fixture
def user_repo(tmp_path) -> git.Repo:
    """A user's repository: one commit on main, a staged change, an unstaged edit, an untracked file."""
    repo = git.Repo.init(tmp_path / "user", initial_branch="main")
    with repo.config_writer("repository") as cfg:
        cfg.set_value("user", "name", "User")
        cfg.set_value("user", "email", "user@example.com")
    root = Path(repo.working_tree_dir)
    (root / "README.md").write_text("hello\n")
    (root / "lib.py").write_text("x = 1\n")
    repo.index.add(["README.md", "lib.py"])
    repo.index.commit("initial")
    (root / "staged.txt").write_text("staged\n")
    repo.index.add(["staged.txt"])
    (root / "lib.py").write_text("x = 2  # unsaved work\n")
    (root / "untracked.txt").write_text("mine\n")
    return repo


def snapshot(repo: git.Repo) -> tuple:
    root = Path(repo.working_tree_dir)
    files = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*")
             if p.is_file() and ".git" not in p.relative_to(root).parts}
    return (repo.head.reference.path, repo.head.commit.hexsha, repo.git.diff("--cached"),
            repo.git.status("--porcelain"), files, (Path(repo.git_dir) / "index").read_bytes())


def test_export_creates_branch_then_stacks_commits(user_repo):
    before = snapshot(user_repo)
    root = Path(user_repo.working_tree_dir)
    files = {"kernel.cpp": KERNEL, "kscout/evidence.json": '{"speedup": 2.5}\n'}
    first = export_kernel(root, "kscout/softmax", files, "softmax: 2.5x over eager")
    commit = user_repo.commit(first)
    assert user_repo.heads["kscout/softmax"].commit.hexsha == first
    assert tree_files(commit) == files                     # the whole tree, nothing else
    assert commit.parents == () and commit.message.strip() == "softmax: 2.5x over eager"
    assert commit.author.name == "User"                    # the repository's own identity

    second = export_kernel(root, "kscout/softmax", {"kernel.cpp": KERNEL_V2}, "softmax: 3.1x")
    commit2 = user_repo.commit(second)
    assert [p.hexsha for p in commit2.parents] == [first]
    assert tree_files(commit2) == {"kernel.cpp": KERNEL_V2}
    assert user_repo.heads["kscout/softmax"].commit.hexsha == second
    assert snapshot(user_repo) == before                   # HEAD, index, working tree untouched
    assert (root / "untracked.txt").read_text() == "mine\n"
    assert (root / "lib.py").read_text() == "x = 2  # unsaved work\n"


def test_export_into_a_new_repository(tmp_path):
    path = tmp_path / "exports" / "kernels"
    sha = export_kernel(path, "softmax", {"kernel.cpp": KERNEL}, "first kernel")
    repo = git.Repo(path)
    assert repo.heads["softmax"].commit.hexsha == sha
    assert tree_files(repo.commit(sha)) == {"kernel.cpp": KERNEL}
    assert list(Path(path).iterdir()) == [path / ".git"]   # working tree stays empty
    assert repo.commit(sha).author.name                    # an identity was available


def test_existing_folder_that_is_not_a_repository(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    with pytest.raises(GitExportError, match=str(folder)):
        export_kernel(folder, "kscout/x", {"kernel.cpp": KERNEL}, "msg")
    assert list(folder.iterdir()) == []


def test_missing_repository_without_create(tmp_path):
    with pytest.raises(GitExportError, match="does not exist"):
        export_kernel(tmp_path / "nope", "kscout/x", {"kernel.cpp": KERNEL}, "msg", create=False)
    assert not (tmp_path / "nope").exists()


def test_checked_out_branch_is_refused(user_repo):
    before = snapshot(user_repo)
    with pytest.raises(GitExportError, match="checked out"):
        export_kernel(Path(user_repo.working_tree_dir), "main", {"kernel.cpp": KERNEL}, "msg")
    assert snapshot(user_repo) == before


@pytest.mark.parametrize("bad", ["../escape.cpp", "/abs.cpp", ".git/config", "a/../../b"])
def test_paths_that_escape_the_tree_are_refused(tmp_path, bad):
    with pytest.raises(GitExportError, match="invalid path"):
        export_kernel(tmp_path / "r", "kscout/x", {bad: KERNEL}, "msg")
    assert not (tmp_path / "r").exists()                   # validated before anything is created


def test_invalid_branch_name_is_refused(tmp_path):
    with pytest.raises(GitExportError, match="not a valid branch name"):
        export_kernel(tmp_path / "r", "bad..name", {"kernel.cpp": KERNEL}, "msg")
    assert not (tmp_path / "r").exists()


@pytest.fixture
def no_global_identity(monkeypatch, tmp_path):
    """Hide the machine's git identity, as on a fresh CI box."""
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)


def test_identity_is_lent_not_configured_in_a_users_repo(tmp_path, no_global_identity):
    repo = git.Repo.init(tmp_path / "user")
    config_before = (Path(repo.git_dir) / "config").read_text()
    sha = export_kernel(Path(repo.working_tree_dir), "kscout/x", {"kernel.cpp": KERNEL}, "msg")
    assert repo.commit(sha).author.email == "kscout@localhost"
    assert (Path(repo.git_dir) / "config").read_text() == config_before


def test_new_repository_gets_a_local_identity(tmp_path, no_global_identity):
    sha = export_kernel(tmp_path / "new", "kscout/x", {"kernel.cpp": KERNEL}, "msg")
    repo = git.Repo(tmp_path / "new")
    assert repo.git.config("user.name") == "kscout"
    assert repo.commit(sha).committer.email == "kscout@localhost"
