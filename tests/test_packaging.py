"""The three distributions as pip sees them: each wheel and sdist holds its own package
only, the library pulls in neither Textual nor the relay, and every command says its
version. Built with ``uv build`` (about 4 s, from uv's cache)."""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = {"e2echat": "e2echat", "e2echat_server": "e2echat_server", "e2echat_tui": "e2echat_tui"}
"""Distribution (file name form) -> the one import package it holds."""
SDIST_EXTRAS = {"PKG-INFO", "pyproject.toml", "README.md", ".gitignore"}
NOT_IN_THE_LIBRARY = ("textual", "e2echat-server", "e2echat-tui", "typer")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [uv, "build", "--all-packages", "--offline", "-q", "-o", str(out)],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    return out


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode())


@pytest.mark.parametrize("dist_name", sorted(PACKAGES))
def test_each_distribution_holds_its_own_package_only(dist: Path, dist_name: str) -> None:
    package = PACKAGES[dist_name]
    (wheel,) = dist.glob(f"{dist_name}-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert tops == {package, f"{wheel.name.split('-py3')[0]}.dist-info"}
    (sdist,) = dist.glob(f"{dist_name}-*.tar.gz")
    with tarfile.open(sdist) as archive:
        tops = {name.split("/")[1] for name in archive.getnames() if name.count("/")}
    assert tops == {package} | SDIST_EXTRAS
    metadata = _metadata(wheel)
    assert metadata.get_all("Project-URL")
    assert "Typing :: Typed" in (metadata.get_all("Classifier") or [])
    assert metadata["License-Expression"] == "MIT"


def test_the_library_pulls_in_neither_textual_nor_the_relay(dist: Path) -> None:
    (wheel,) = dist.glob("e2echat-[0-9]*.whl")
    required = _metadata(wheel).get_all("Requires-Dist") or []
    plain = [r for r in required if "extra ==" not in r]
    assert plain, required
    for forbidden in NOT_IN_THE_LIBRARY:
        assert not [r for r in plain if r.split(">")[0].split(";")[0].strip() == forbidden]
    assert any(r.startswith("e2echat-server") and "extra == 'testing'" in r for r in required)


def test_every_command_says_its_version(dist: Path) -> None:
    commands: dict[str, str] = {}
    for wheel in dist.glob("*.whl"):
        version = _metadata(wheel)["Version"]
        with zipfile.ZipFile(wheel) as archive:
            for name in [n for n in archive.namelist() if n.endswith("entry_points.txt")]:
                text = archive.read(name).decode()
                section = text.split("[console_scripts]", 1)[-1].split("\n[", 1)[0]
                lines = [line for line in section.splitlines() if "=" in line]
                commands |= {line.split("=")[0].strip(): version for line in lines}
    assert sorted(commands) == ["e2echat", "e2echat-server"]
    bin_dir = Path(sys.executable).parent
    for command, version in commands.items():
        shown = subprocess.run(
            [str(bin_dir / command), "--version"], capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"{command}, version {version}"), shown.stdout
