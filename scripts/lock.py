"""The dependency lock: regenerate it (``make lock``) or check it against setup.cfg (``make test``).

Two hashed pip-compile locks sit at the top of the repository:

* ``requirements.lock``: what ``pip install .`` needs to run (production installs);
* ``requirements-test.lock``: the same versions plus the test and lint tools, plus the build
  backend (setuptools, wheel), so even the editable install builds from pinned parts.

Each starts with a fingerprint of the dependency declarations it was compiled from
(``install_requires``, the ``test`` extra, ``[build-system] requires``). ``check`` fails when
setup.cfg or pyproject.toml no longer match that fingerprint, or when a pinned version does not
satisfy its declaration: the lock and setup.cfg disagree, run ``make lock``.
"""

from __future__ import annotations

import configparser
import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
FINGERPRINT = "# apolo-dependencies-sha256: "
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.MULTILINE)


def declarations(root: Path = ROOT) -> dict[str, list[str]]:
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")

    def lines(section: str, key: str) -> list[str]:
        raw = cfg.get(section, key, fallback="")
        return sorted(line.strip() for line in raw.splitlines() if line.strip())

    build = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"]
    return {
        "runtime": lines("options", "install_requires"),
        "test": lines("options.extras_require", "test"),
        "build": sorted(build),
    }


def fingerprint(root: Path = ROOT) -> str:
    decl = declarations(root)
    text = "\n".join(f"{group}: {req}" for group in sorted(decl) for req in decl[group])
    return hashlib.sha256(text.encode()).hexdigest()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> dict[str, str]:
    return {_norm(m.group(1)): m.group(2) for m in _PIN.finditer(lock.read_text())}


def check(root: Path = ROOT) -> list[str]:
    from packaging.requirements import Requirement
    from packaging.version import Version

    problems: list[str] = []
    want = fingerprint(root)
    decl = declarations(root)
    runtime_lock, test_lock = root / RUNTIME_LOCK.name, root / TEST_LOCK.name
    groups = {runtime_lock: ["runtime"], test_lock: ["runtime", "test", "build"]}
    for lock, names in groups.items():
        if not lock.exists():
            problems.append(f"{lock.name} is missing")
            continue
        text = lock.read_text()
        if f"{FINGERPRINT}{want}" not in text:
            problems.append(f"{lock.name} was compiled from other dependency declarations")
        pinned = pins(lock)
        for group in names:
            for line in decl[group]:
                req = Requirement(line)
                version = pinned.get(_norm(req.name))
                if version is None:
                    problems.append(f"{lock.name}: {req.name} ({group}) is not pinned")
                elif not req.specifier.contains(Version(version), prereleases=True):
                    problems.append(f"{lock.name}: {req.name}=={version} does not satisfy {line}")
    if not (runtime_lock.exists() and test_lock.exists()):
        return problems
    runtime, test = pins(runtime_lock), pins(test_lock)
    for name, version in runtime.items():
        if test.get(name) != version:
            problems.append(f"{name}: {version} in requirements.lock, {test.get(name)} in tests")
    return problems


def compile_locks(pip_compile: str) -> None:
    common = [
        pip_compile, "--quiet", "--generate-hashes", "--strip-extras", "--allow-unsafe",
        "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host",
        "--newline=LF", "setup.cfg",
    ]  # fmt: skip
    subprocess.run(
        [*common, "--extra", "test", "--all-build-deps", "-o", TEST_LOCK.name],
        cwd=ROOT,
        check=True,
    )
    subprocess.run(
        [*common, "--constraint", TEST_LOCK.name, "-o", RUNTIME_LOCK.name], cwd=ROOT, check=True
    )
    stamp = f"{FINGERPRINT}{fingerprint()}\n"
    for lock in (TEST_LOCK, RUNTIME_LOCK):
        body = "".join(
            line for line in lock.read_text().splitlines(keepends=True)
            if not line.startswith(FINGERPRINT)
        )  # fmt: skip
        lock.write_text(stamp + body)


def main(argv: list[str]) -> int:
    if argv[:1] == ["compile"]:
        compile_locks(argv[1])
        return 0
    problems = check()
    for problem in problems:
        print(f"lock: {problem}", file=sys.stderr)
    if problems:
        print("lock: the lock and setup.cfg disagree; run `make lock`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
