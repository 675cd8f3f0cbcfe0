"""Notebook and package from one git ref, and scripts/release.py, which pins both to a tag.

- every notebook's Colab badge opens the ref its setup cell installs from, and that ref exists in this repository
  (``main`` between releases; CI runs on a clone of ``main``);
- the checker reports a ref that does not exist (``v9.9.9``) and a badge that opens another ref than the cell;
- release.py, run on a temporary clone: one commit that moves every badge, setup cell and the version to the tag,
  the tag command printed; ``--main`` moves them back; a dirty tree, a malformed version or an existing tag is
  refused with a one-line error and nothing committed;
- release.py --repo (a teacher's fork), on a temporary clone: one commit that moves pyproject.toml's address, every
  badge and every setup cell to the fork, after which nothing names the old address; a bad address is refused.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, root: Path = ROOT):
    spec = importlib.util.spec_from_file_location(name, root / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release, badges, setup_cell = _load("release"), _load("badges"), _load("setup_cell")
PATHS = setup_cell.notebooks()
URL = badges.repository_url()
IN_GIT = shutil.which("git") is not None and (ROOT / ".git").exists()
needs_git = pytest.mark.skipif(not IN_GIT, reason="not a git clone")

# What a clone needs from this working tree for release.py to run as it would after a commit of this change.
OVERLAY = ["pyproject.toml", "README.md", "gpt_lesson/__init__.py", "scripts/release.py", "scripts/badges.py",
           "scripts/setup_cell.py", "notebooks/notebooks.json", *[f"notebooks/{p.name}" for p in PATHS]]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid"}


@needs_git
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_setup_cell_installs_from_the_ref_its_badge_opens_and_it_exists(path):
    nb = nbformat.read(path, as_version=4)
    assert release.ref_problems(nb, path.name) == []
    badge_ref, cell_ref = release.notebook_refs(nb)
    assert badge_ref == cell_ref == setup_cell.colab_ref()


def _notebook(badge_ref: str, cell_ref: str):
    file = PATHS[0].name
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Title\n\n{badges.badge(file, URL, badge_ref)}"),
                nbformat.v4.new_code_cell(setup_cell.render(URL, cell_ref))]
    return nb


@needs_git
def test_checker_reports_a_ref_that_does_not_exist():
    assert release.ref_problems(_notebook("main", "main"), "x.ipynb") == []
    assert release.ref_problems(_notebook("v9.9.9", "v9.9.9"), "x.ipynb") == [
        "x.ipynb: ref v9.9.9 does not exist in this repository"]
    assert release.ref_problems(_notebook("main", "v9.9.9"), "x.ipynb") == [
        "x.ipynb: the badge opens main but the setup cell installs from v9.9.9",
        "x.ipynb: ref v9.9.9 does not exist in this repository"]
    nb = _notebook("main", "main")
    nb.cells[0].source = "# Title"
    assert release.ref_problems(nb, "x.ipynb") == ["x.ipynb: no Colab badge found"]


def _git(clone: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=clone, env=env, capture_output=True, text=True, check=True).stdout


def _release(clone: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run([sys.executable, "scripts/release.py", *args], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def clone(tmp_path) -> Path:
    """A clone of this repository whose release files are this working tree's, committed: a clean tree."""
    if not IN_GIT:
        pytest.skip("not a git clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True)
    for rel in OVERLAY:
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, clone / rel)
    _git(clone, "add", "--", *OVERLAY)
    _git(clone, "commit", "-q", "--allow-empty", "-m", "this working tree's release files")
    return clone


def _refs(clone: Path) -> set[tuple[str | None, str | None]]:
    paths = sorted((clone / "notebooks").glob("0*.ipynb"))
    return {release.notebook_refs(nbformat.read(p, as_version=4)) for p in paths}


def _setup_outputs(clone: Path) -> list:
    return [setup_cell.setup_cell(nbformat.read(p, as_version=4)).outputs
            for p in sorted((clone / "notebooks").glob("0*.ipynb"))]


def test_release_pins_every_badge_and_setup_cell_in_one_commit(clone):
    before, outputs = _git(clone, "rev-parse", "HEAD").strip(), _setup_outputs(clone)
    assert _refs(clone) == {("main", "main")}
    done = _release(clone, "1.2.3")
    assert done.returncode == 0, done.stderr
    assert 'git tag -a v1.2.3 -m "gpt-lesson 1.2.3"' in done.stdout and "git push origin v1.2.3" in done.stdout
    assert "scripts/release.py --main" in done.stdout
    assert _git(clone, "rev-list", "--count", f"{before}..HEAD").strip() == "1", "one commit"
    assert _git(clone, "log", "-1", "--format=%s").strip() == "Release v1.2.3"
    files = set(_git(clone, "show", "--name-only", "--format=", "HEAD").split())
    assert files == {"pyproject.toml", "gpt_lesson/__init__.py", "README.md", *[f"notebooks/{p.name}" for p in PATHS]}
    assert _git(clone, "status", "--porcelain") == "", "nothing left uncommitted"
    assert _refs(clone) == {("v1.2.3", "v1.2.3")}
    assert _setup_outputs(clone) == outputs, "the setup cells keep their stored output"
    readme = (clone / "README.md").read_text(encoding="utf-8")
    assert len(re.findall(r"/blob/v1\.2\.3/notebooks/", readme)) == len(PATHS) and "/blob/main/" not in readme
    assert setup_cell.pyproject(clone / "pyproject.toml")[1] == "1.2.3"
    assert setup_cell.colab_ref(clone / "pyproject.toml") == "v1.2.3"
    assert '__version__ = "1.2.3"' in (clone / "gpt_lesson" / "__init__.py").read_text(encoding="utf-8")
    for name in ("badges", "setup_cell"):
        assert _load(name, clone).main(["--check"]) == 0, f"scripts/{name}.py --check"

    _git(clone, "tag", "-a", "v1.2.3", "-m", "gpt-lesson 1.2.3")
    again = _release(clone, "1.2.3")
    assert again.returncode == 1 and again.stderr.strip() == "error: v1.2.3 exists already in this repository"
    back = _release(clone, "--main")
    assert back.returncode == 0, back.stderr
    assert _refs(clone) == {("main", "main")}
    assert setup_cell.pyproject(clone / "pyproject.toml")[1] == "1.2.3", "the version stays"
    assert _git(clone, "rev-list", "--count", f"{before}..HEAD").strip() == "2"
    assert _git(clone, "status", "--porcelain") == ""


@pytest.mark.parametrize("version", ["v1.2.3", "1.2", "1.2.3.", "latest", ""])
def test_release_refuses_a_malformed_version(version):
    """Refused before anything is read or written, so this runs on the module itself."""
    with pytest.raises(SystemExit) as refused:
        release.main([version])
    message = str(refused.value.code)
    assert message.startswith("error: malformed version") and "\n" not in message
    if version == "v1.2.3":
        assert "(without the v: 1.2.3)" in message


def test_release_refuses_a_dirty_tree(clone):
    head = _git(clone, "rev-parse", "HEAD")
    with open(clone / "README.md", "a", encoding="utf-8") as f:
        f.write("\nan edit not yet committed\n")
    done = _release(clone, "1.2.3")
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: the working tree has uncommitted changes (see git status); "
                                   "commit or stash them first")
    assert _git(clone, "rev-parse", "HEAD") == head and _refs(clone) == {("main", "main")}
    assert _git(clone, "status", "--porcelain").split() == ["M", "README.md"], "only the user's own edit"


FORK = "https://github.com/a-teacher/gpt-lesson-2025"


def _fork_texts(clone: Path) -> dict[str, str]:
    """Every file --repo rewrites, by its path in the clone."""
    paths = ["pyproject.toml", "README.md", *[f"notebooks/{p.name}" for p in PATHS]]
    return {rel: (clone / rel).read_text(encoding="utf-8") for rel in paths}


def test_repo_points_pyproject_every_badge_and_setup_cell_at_a_fork_in_one_commit(clone):
    assert FORK != URL
    before, outputs = _git(clone, "rev-parse", "HEAD").strip(), _setup_outputs(clone)
    done = _release(clone, "--repo", FORK + ".git")  # as GitHub's clone button gives it
    assert done.returncode == 0, done.stderr
    assert f"name {FORK} (was {URL})" in done.stdout and "git push origin" in done.stdout
    assert _git(clone, "rev-list", "--count", f"{before}..HEAD").strip() == "1", "one commit"
    files = set(_git(clone, "show", "--name-only", "--format=", "HEAD").split())
    assert files == {"pyproject.toml", "README.md", *[f"notebooks/{p.name}" for p in PATHS]}
    assert _git(clone, "status", "--porcelain") == "", "nothing left uncommitted"

    assert badges.repository_url(clone / "pyproject.toml") == FORK
    ref = setup_cell.colab_ref(clone / "pyproject.toml")
    assert _refs(clone) == {(ref, ref)}, "the ref stays"
    for path in sorted((clone / "notebooks").glob("0*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert badges.badge(path.name, FORK, ref) in nb.cells[0].source, path.name
        (install,) = setup_cell.INSTALL_RE.finditer(setup_cell.setup_cell(nb).source)
        assert (install["url"], install["ref"]) == (FORK, ref), path.name
    assert _setup_outputs(clone) == outputs, "the setup cells keep their stored output"
    readme = (clone / "README.md").read_text(encoding="utf-8")
    assert readme.count(f"/github/{badges.owner_repo(FORK)}/blob/{ref}/notebooks/") == len(PATHS)
    old = badges.owner_repo(URL)
    assert [rel for rel, text in _fork_texts(clone).items() if old in text] == [], f"{old} is still named"
    for name in ("badges", "setup_cell"):
        assert _load(name, clone).main(["--check"]) == 0, f"scripts/{name}.py --check"
    requirements = pytest.importorskip("packaging.requirements")
    line = setup_cell.INSTALL_RE.search(setup_cell.render(FORK, ref))[0]
    assert requirements.Requirement(line.split('"')[1]).url == f"git+{FORK}@{ref}", "pip reads the install line"

    again = _release(clone, "--repo", FORK)
    assert again.returncode == 1 and again.stderr.strip() == f"error: nothing to commit: pyproject.toml names {FORK} " \
                                                               "already"


@pytest.mark.parametrize("address", ["http://github.com/a/b", "https://github.com/a", "https://gitlab.com/a/b",
                                     "git@github.com:a/b.git", "https://github.com/a/b/tree/main", "a/b", ""])
def test_repo_refuses_an_address_colab_cannot_open(address):
    """Refused before anything is read or written, so this runs on the module itself."""
    with pytest.raises(SystemExit) as refused:
        release.main(["--repo", address])
    message = str(refused.value.code)
    assert message.startswith("error: --repo must be https://github.com/OWNER/NAME") and repr(address) in message
