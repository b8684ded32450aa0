"""`make test` refuses to run when the dependency lock and setup.cfg disagree."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("apolo_lock", ROOT / "scripts" / "lock.py")
assert _spec and _spec.loader
lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock)

FILES = ("setup.cfg", "pyproject.toml", "requirements.lock", "requirements-test.lock")


def copy_project(tmp_path: Path) -> Path:
    for name in FILES:
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_committed_lock_matches_setup_cfg() -> None:
    assert lock.check(ROOT) == []


def test_every_declared_dependency_is_pinned_exactly() -> None:
    for name in ("requirements.lock", "requirements-test.lock"):
        text = (ROOT / name).read_text()
        pinned = re.findall(r"^([a-z0-9][a-z0-9._-]*)==\S+ \\$", text, re.MULTILINE)
        assert len(pinned) >= 20, name
        assert text.count("--hash=sha256:") >= len(pinned)  # every pin carries its hashes
    for group in lock.declarations(ROOT).values():
        for requirement in group:
            name = re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0]
            assert lock._norm(name) in lock.pins(ROOT / "requirements-test.lock"), name


def test_a_new_dependency_without_relocking_fails(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    cfg = (root / "setup.cfg").read_text()
    added = cfg.replace("    lxml>=5.3\n", "    lxml>=5.3\n    attrs>=20\n")
    (root / "setup.cfg").write_text(added)
    problems = lock.check(root)
    assert any("other dependency declarations" in p for p in problems), problems


def test_a_pin_outside_its_declared_range_fails(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    for name in ("requirements.lock", "requirements-test.lock"):
        text = (root / name).read_text()
        (root / name).write_text(re.sub(r"^flask==\S+", "flask==2.0.0", text, flags=re.MULTILINE))
    problems = lock.check(root)
    assert any("flask==2.0.0 does not satisfy" in p for p in problems), problems


def test_runtime_and_test_locks_agree_on_versions(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    text = (root / "requirements.lock").read_text()
    (root / "requirements.lock").write_text(
        re.sub(r"^click==\S+", "click==8.1.0", text, flags=re.MULTILINE)
    )
    assert any(p.startswith("click: 8.1.0") for p in lock.check(root))
