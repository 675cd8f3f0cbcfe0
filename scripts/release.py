#!/usr/bin/env python3
"""Make a release commit: every Colab badge and setup cell, and the package's version, name the tag vVERSION.

Between releases the notebooks point at ``main`` (``[tool.gpt-lesson] colab-ref`` in pyproject.toml): a badge opens
the notebook from ``main`` and its setup cell installs the package from ``main``, so the two always match, and a
change to both reaches Colab as soon as it is pushed. A release pins both to a tag that never moves:

    python scripts/release.py 0.2.0   # one commit "Release v0.2.0"; prints the git tag and push commands
    python scripts/release.py --main  # after tagging: one commit that points the notebooks back at main
    python scripts/release.py --repo https://github.com/THEM/gpt-lesson  # a fork: one commit naming its address

``VERSION`` sets colab-ref to ``vVERSION`` and ``[project] version`` and ``gpt_lesson.__version__`` to VERSION,
then runs scripts/badges.py and scripts/setup_cell.py --write (only the install line changes, so the stored outputs
are kept and no kernel starts) and commits exactly the files they changed: pyproject.toml, gpt_lesson/__init__.py,
README.md and the notebooks. It refuses a malformed version, a tag that exists, out-of-date notebooks and a working
tree with uncommitted changes. It neither tags nor pushes.

``--repo URL`` (a teacher's fork) sets ``[project.urls] Repository`` to URL, which must be
https://github.com/OWNER/NAME, and rewrites the same files the same way: every badge then opens the fork's notebooks
and every setup cell installs the fork's package, at the same ref as before.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
INIT = ROOT / "gpt_lesson" / "__init__.py"
BRANCH = "main"  # the ref the notebooks point at between releases
VERSION_RE = re.compile(r"\d+\.\d+\.\d+((a|b|rc)\d+)?")  # 0.2.0, 1.0.0rc1

COLAB_REF_LINE = re.compile(r'^(colab-ref\s*=\s*)"[^"]*"', re.MULTILINE)
REPOSITORY_LINE = re.compile(r'^(Repository\s*=\s*)"[^"]*"', re.MULTILINE)  # [project.urls] Repository
VERSION_LINE = re.compile(r'^(version\s*=\s*)"[^"]*"', re.MULTILINE)  # the first: [project] version
INIT_VERSION_LINE = re.compile(r'^(__version__\s*=\s*)"[^"]*"', re.MULTILINE)


@functools.cache
def _script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"_release_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def git(*args: str, root: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=check)


def ref_exists(ref: str, root: Path = ROOT) -> bool:
    """Whether ``ref`` names a commit in the repository at ``root`` (a tag, a branch, or origin's branch)."""
    return any(
        git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}", root=root, check=False).returncode == 0
        for name in (ref, f"refs/remotes/origin/{ref}")
    )


def notebook_refs(nb) -> tuple[str | None, str | None]:
    """(the ref the notebook's Colab badge opens, the ref its setup cell installs from); None where not found."""
    badges, setup_cell = _script("badges"), _script("setup_cell")
    first = nb.cells[0].source if nb.cells and nb.cells[0].cell_type == "markdown" else ""
    badge = badges.BADGE_REF_RE.search(first)
    cell = setup_cell.setup_cell(nb)
    install = setup_cell.INSTALL_RE.search(cell.source) if cell is not None else None
    return (badge["ref"] if badge else None), (install["ref"] if install else None)


def ref_problems(nb, name: str, root: Path = ROOT) -> list[str]:
    """What is wrong with a notebook's refs: missing, different in badge and setup cell, or not in the repository."""
    badge_ref, cell_ref = notebook_refs(nb)
    if badge_ref is None or cell_ref is None:
        return [f"{name}: no {'Colab badge' if badge_ref is None else 'install line in the setup cell'} found"]
    problems = []
    if badge_ref != cell_ref:
        problems.append(f"{name}: the badge opens {badge_ref} but the setup cell installs from {cell_ref}")
    problems += [f"{name}: ref {ref} does not exist in this repository" for ref in sorted({badge_ref, cell_ref})
                 if not ref_exists(ref, root)]
    return problems


def _rewrite(path: Path, pattern: re.Pattern, value: str) -> None:
    text = path.read_text(encoding="utf-8")
    new, n = pattern.subn(lambda m: f'{m[1]}"{value}"', text, count=1)
    if n != 1:
        raise SystemExit(f"error: {path.relative_to(ROOT)}: no line matching {pattern.pattern!r}")
    path.write_text(new, encoding="utf-8")


def _call(name: str, *args: str) -> tuple[int, str]:
    """Run ``scripts/<name>.py args`` in this process (one import of nbformat); its exit code and output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = _script(name).main(list(args))
    return code, out.getvalue()


def _commit(message: str, target: str) -> list[str]:
    """Commit exactly the files the rewrite changed (all of them in the allowed set); return their paths."""
    status = git("status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    changed = sorted(line[3:] for line in status)
    allowed = {"pyproject.toml", "README.md", "gpt_lesson/__init__.py"}
    stray = [p for p in changed if p not in allowed and not re.fullmatch(r"notebooks/[^/]+\.ipynb", p)]
    if stray:
        raise SystemExit(f"error: the rewrite changed files it should not have: {', '.join(stray)}")
    if not changed:
        raise SystemExit(f"error: nothing to commit: the notebooks point at {target} already")
    git("add", "--", *changed)
    git("commit", "-q", "-m", message, "--", *changed)
    return changed


def point_at(ref: str | None, version: str | None, message: str, *, repo: str | None = None) -> list[str]:
    """Set colab-ref, the version and the repository's address (those given), rewrite badges and setup cells, commit;
    return the committed paths."""
    if ref is not None:
        _rewrite(PYPROJECT, COLAB_REF_LINE, ref)
    if repo is not None:
        _rewrite(PYPROJECT, REPOSITORY_LINE, repo)
    if version is not None:
        _rewrite(PYPROJECT, VERSION_LINE, version)
        _rewrite(INIT, INIT_VERSION_LINE, version)
    for name, *args in (("badges",), ("setup_cell", "--write")):
        code, out = _call(name, *args)
        if code:
            last = (out.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"error: scripts/{name}.py {' '.join(args)} failed: {last}")
    return _commit(message, repo or ref)


def preflight() -> None:
    """Refuse a working tree with uncommitted changes, or notebooks out of date before the ref changes."""
    if git("rev-parse", "--is-inside-work-tree", check=False).returncode:
        raise SystemExit(f"error: {ROOT} is not a git working tree")
    if git("status", "--porcelain", "--untracked-files=all").stdout.strip():
        raise SystemExit("error: the working tree has uncommitted changes (see git status); commit or stash them first")
    if git("var", "GIT_COMMITTER_IDENT", check=False).returncode:
        raise SystemExit("error: git cannot commit as anyone: set git config user.name and user.email first")
    for name, fix in (("badges", ""), ("setup_cell", " --write")):
        if _call(name, "--check")[0]:
            raise SystemExit(f"error: notebooks out of date (scripts/{name}.py --check fails): "
                             f"run scripts/{name}.py{fix} and commit first")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("version", nargs="?", help="the version to release, e.g. 0.2.0 (the tag is v0.2.0)")
    what.add_argument("--main", action="store_true", help=f"point the notebooks back at {BRANCH} (after tagging)")
    what.add_argument("--repo", metavar="URL", help="a fork: point pyproject.toml, every Colab badge and every setup "
                                                     "cell at this repository, https://github.com/OWNER/NAME")
    args = ap.parse_args(argv)
    try:
        return _release(args)
    except subprocess.CalledProcessError as e:
        last = (e.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"error: {' '.join(e.cmd)} failed: {last[0]}") from None


def _release(args: argparse.Namespace) -> int:
    if args.repo is not None:
        return _fork(args.repo)
    if args.main:
        preflight()
        files = point_at(BRANCH, None, f"Notebooks point at {BRANCH} again")
        print(f"Committed {git('rev-parse', '--short', 'HEAD').stdout.strip()}: {len(files)} files point at {BRANCH}.")
        print(f"Push it:\n  git push origin {_branch()}")
        return 0
    version = args.version
    if not VERSION_RE.fullmatch(version):
        hint = f" (without the v: {version[1:]})" if VERSION_RE.fullmatch(version[1:]) else ""
        raise SystemExit(f"error: malformed version {version!r}{hint}: give X.Y.Z, e.g. 0.2.0")
    tag = f"v{version}"
    if ref_exists(tag):
        raise SystemExit(f"error: {tag} exists already in this repository")
    preflight()
    files = point_at(tag, version, f"Release {tag}")
    sha = git("rev-parse", "--short", "HEAD").stdout.strip()
    print(f"Committed {sha} \"Release {tag}\": badges, setup cells and version name {tag} in {len(files)} files.")
    print("Tag and push it (this script does neither):")
    print(f'  git tag -a {tag} -m "gpt-lesson {version}"')
    print(f"  git push origin {tag}")
    print(f"Then point the notebooks on {BRANCH} back at {BRANCH} and push:")
    print("  python scripts/release.py --main")
    print(f"  git push origin {_branch()}")
    return 0


def _fork(address: str) -> int:
    """Point the package, the badges and the setup cells at the repository ``address``, in one commit."""
    badges = _script("badges")
    url = badges.github_repository(address)
    if url is None:
        raise SystemExit(f"error: --repo must be https://github.com/OWNER/NAME (Colab opens notebooks from GitHub), "
                         f"got {address!r}")
    preflight()
    old = badges.repository_url(PYPROJECT)
    if url == old:
        raise SystemExit(f"error: nothing to commit: pyproject.toml names {url} already")
    files = point_at(None, None, f"Point the notebooks and the package at {url}", repo=url)
    sha = git("rev-parse", "--short", "HEAD").stdout.strip()
    print(f"Committed {sha}: badges, setup cells and pyproject.toml name {url} (was {old}) in {len(files)} files.")
    print(f"Push it, and the badges open your notebooks:\n  git push origin {_branch()}")
    return 0


def _branch() -> str:
    name = git("rev-parse", "--abbrev-ref", "HEAD", check=False).stdout.strip()
    return name if name and name != "HEAD" else BRANCH


if __name__ == "__main__":
    sys.exit(main())
