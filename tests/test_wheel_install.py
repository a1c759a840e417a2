"""Packaging for production images: the built wheel installs with the CPU closure through the
``cpu`` extra and the constraints, offline, and the CUDA ``fbgemm-gpu`` can never be chosen
on CPU (nor the CPU builds on GPU).

The slow tests need no network: a fresh venv sees the locked set through a ``.pth`` file
naming a folder of links to exactly the distributions ``requirements/cpu.lock`` pins (as
installed in the project's .venv), and pip runs with ``--no-index`` and no configuration.
"CUDA" wheels are metadata-only fakes with the real names and versions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements"
GPU_ONLY = {"torch", "fbgemm-gpu-cpu"}  # pins that differ between the closures
LOCK_FILES = ("cpu.lock", "cpu-no-torch.lock", "constraints-cpu.txt", "constraints-gpu.txt")


def load_standin():
    spec = importlib.util.spec_from_file_location("fbgemm_gpu_standin", REQUIREMENTS / "fbgemm_gpu_standin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{path.name}: {line} is not a pin"
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def locked_standin_version(pins: dict[str, str]) -> str:
    """The stand-in's version: the locked fbgemm-gpu-cpu release plus the stand-in's label."""
    return f"{pins['fbgemm-gpu-cpu']}+{load_standin().LOCAL_LABEL}"


def requirement_named(requirements: list[str], name: str) -> Requirement:
    (found,) = [Requirement(r) for r in requirements if canonicalize_name(Requirement(r).name) == name]
    return found


# --------------------------------------------------------------------------- fast checks
def test_standin_is_a_reproducible_metadata_only_wheel_requiring_the_cpu_build(tmp_path) -> None:
    standin, pins = load_standin(), read_pins(REQUIREMENTS / "cpu.lock")
    first, second = standin.write_standin(tmp_path / "a"), standin.write_standin(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    cpu_version = pins["fbgemm-gpu-cpu"]
    assert first.name == f"fbgemm_gpu-{cpu_version}+recft.cpu-py3-none-any.whl"
    with zipfile.ZipFile(first) as wheel:
        assert all(name.split("/")[0].endswith(".dist-info") for name in wheel.namelist())
        fields = wheel.read(f"fbgemm_gpu-{cpu_version}+recft.cpu.dist-info/METADATA").decode()
    assert "Name: fbgemm-gpu\n" in fields
    assert f"Requires-Dist: fbgemm-gpu-cpu=={cpu_version}\n" in fields


def test_pyproject_locks_and_constraints_agree() -> None:
    cpu, gpu = read_pins(REQUIREMENTS / "cpu.lock"), read_pins(REQUIREMENTS / "cpu-no-torch.lock")
    assert set(cpu) - set(gpu) == GPU_ONLY and not set(gpu) - set(cpu)
    assert {name: cpu[name] for name in gpu} == gpu
    for name in LOCK_FILES:  # no requirement file names the CUDA-only distribution
        text = (REQUIREMENTS / name).read_text(encoding="utf-8")
        assert not re.search(r"^\s*fbgemm-gpu\s*[=<>!~]", text, re.M), name
    standin_version = Version(locked_standin_version(cpu))
    assert standin_version.local == "recft.cpu"
    assert standin_version.public == cpu["fbgemm-gpu-cpu"]
    cuda_version = Version(standin_version.public)  # the CUDA fbgemm-gpu of the same release

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    cpu_extra, gpu_extra = project["optional-dependencies"]["cpu"], project["optional-dependencies"]["gpu"]
    assert list(requirement_named(cpu_extra, "fbgemm-gpu").specifier.filter(
        [standin_version, cuda_version])) == [standin_version]
    assert cpu["fbgemm-gpu-cpu"] in requirement_named(cpu_extra, "fbgemm-gpu-cpu").specifier
    assert list(requirement_named(gpu_extra, "fbgemm-gpu").specifier.filter(
        [standin_version, cuda_version])) == [cuda_version]
    for dependency in map(Requirement, project["dependencies"]):  # the lock satisfies pyproject
        name = canonicalize_name(dependency.name)
        assert name in cpu and dependency.specifier.contains(cpu[name], prereleases=True), dependency

    constraints = (REQUIREMENTS / "constraints-gpu.txt").read_text(encoding="utf-8").splitlines()
    specs = [Requirement(line) for line in constraints if line and line[0] not in "#-"]
    torch_spec = requirement_named([str(s) for s in specs], "torch").specifier
    fbgemm_spec = requirement_named(gpu_extra, "fbgemm-gpu").specifier
    torch_cpu = Version(cpu["torch"])
    assert torch_cpu.local == "cpu" and torch_cpu not in torch_spec
    assert Version(torch_cpu.public) in torch_spec and Version(f"{torch_cpu.public}+cu128") in torch_spec
    assert standin_version not in fbgemm_spec and cuda_version in fbgemm_spec
    assert Version(f"{cuda_version.major}.{cuda_version.minor + 1}.0") not in fbgemm_spec
    assert "-c cpu.lock" in (REQUIREMENTS / "constraints-cpu.txt").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- slow: real installs
def _locked_view(folder: Path) -> Path:
    """Links to every distribution cpu.lock pins (as installed here) and to pip, nothing else
    (the lock has no fbgemm-gpu stand-in: the install must find it next to the recft wheel)."""
    folder.mkdir()
    wanted = {**read_pins(REQUIREMENTS / "cpu.lock"), "pip": None}
    for name, version in wanted.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} (pinned in cpu.lock) is not installed here: run make setup")
        if version is not None and Version(dist.version) != Version(version):
            pytest.fail(f"{name}: {dist.version} installed, cpu.lock pins {version}: run make setup")
        tops = {path.parts[0] for path in dist.files or [] if path.parts[0] not in ("..", "__pycache__")}
        for top in tops:
            target = Path(dist.locate_file(top))
            if target.exists() and not (folder / top).exists():
                (folder / top).symlink_to(target)
    return folder


def _fresh_venv(path: Path, view: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "recft-locked-set.pth").write_text(f"{view}\n")
    return python


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "OMP_NUM_THREADS": "1"}


def _run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=_offline_env(), capture_output=True,
                          text=True, timeout=600)


def _pip_install(python: Path, *args: object, report: Path) -> subprocess.CompletedProcess[str]:
    return _run(python, "-m", "pip", "install", "--no-index", "--report", report, *args)


def _would_install(report: Path) -> dict[str, str]:
    items = json.loads(report.read_text())["install"]
    return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in items}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """recft's wheel (built from a copy of the tree), the stand-in, fake CUDA wheels, the view."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO / "recft", source / "recft", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    dist = root / "dist"
    build = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source)
    assert build.returncode == 0, build.stderr[-3000:]
    standin, pins = load_standin(), read_pins(REQUIREMENTS / "cpu.lock")
    standin.write_standin(dist / "cpu")
    cuda = root / "fake-cuda"
    for name, version in (("fbgemm-gpu", pins["fbgemm-gpu-cpu"]),
                          ("torch", Version(pins["torch"]).public)):
        standin.write_metadata_wheel(cuda, name, version, [], summary="fake CUDA build (test)")
    return {"root": root, "dist": dist, "cpu": dist / "cpu", "cuda": cuda,
            "view": _locked_view(root / "locked-set")}


@pytest.mark.slow
def test_wheel_installs_offline_with_the_cpu_extra_and_runs(built: dict[str, Path]) -> None:
    root = built["root"]
    python = _fresh_venv(root / "cpu-venv", built["view"])
    report = root / "cpu-install.json"
    install = _pip_install(python, "--find-links", built["dist"], "--find-links", built["cpu"],
                           "recft[cpu]", "-c", REQUIREMENTS / "constraints-cpu.txt", report=report)
    assert install.returncode == 0, install.stderr[-3000:]
    installed = _would_install(report)
    assert installed.pop("fbgemm-gpu") == locked_standin_version(read_pins(REQUIREMENTS / "cpu.lock"))
    assert list(installed) == ["recft"]  # everything else came from the locked set

    check = _run(python, "-m", "pip", "check")
    assert check.returncode == 0 and "No broken requirements" in check.stdout, check.stdout
    job = root / "job"  # a production job's folder: the repo's sources are not on the path
    job.mkdir()
    where = _run(python, "-c", "import recft; print(recft.__file__)", cwd=job)
    assert str(root / "cpu-venv") in where.stdout, where.stdout + where.stderr
    env_check = _run(python, "-m", "recft.env_check", cwd=job)
    assert env_check.returncode == 0 and "recft environment OK" in env_check.stdout, env_check.stderr
    run = _run(root / "cpu-venv" / "bin" / "recft", "pretrain", "--dataset", "synthetic:tiny",
               "--epochs", "1", "--out", "base", "-q", cwd=job)
    assert run.returncode == 0 and run.stderr == "", run.stderr[-3000:]
    assert json.loads(run.stdout)["checkpoint"] == "base" and (job / "base").is_dir()


@pytest.mark.slow
def test_cpu_extra_refuses_the_cuda_fbgemm_and_gpu_constraints_refuse_the_cpu_builds(
        built: dict[str, Path]) -> None:
    root = built["root"]
    python = _fresh_venv(root / "resolve-venv", built["view"])
    pins = read_pins(REQUIREMENTS / "cpu.lock")
    links = ["--find-links", built["dist"], "--find-links", built["cuda"]]

    # the fake CUDA fbgemm-gpu is reachable: a plain install (torchrec's requirement) takes it
    plain = _pip_install(python, "--dry-run", *links, "recft", report=root / "plain.json")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert _would_install(root / "plain.json")["fbgemm-gpu"] == pins["fbgemm-gpu-cpu"]
    # ... but the cpu extra cannot: without the stand-in it fails instead of falling back
    refused = _pip_install(python, "--dry-run", *links, "recft[cpu]",
                           "-c", REQUIREMENTS / "constraints-cpu.txt", report=root / "refused.json")
    assert refused.returncode != 0
    assert f"fbgemm-gpu=={locked_standin_version(pins)}" in refused.stdout + refused.stderr  # pip names it
    assert not (root / "refused.json").exists()

    # GPU: with the stand-in and the locked +cpu torch both reachable, the CUDA builds win
    gpu = _pip_install(python, "--dry-run", *links, "--find-links", built["cpu"], "recft[gpu]",
                       "-c", REQUIREMENTS / "constraints-gpu.txt", report=root / "gpu.json")
    assert gpu.returncode == 0, gpu.stderr[-3000:]
    chosen = _would_install(root / "gpu.json")
    assert chosen["fbgemm-gpu"] == pins["fbgemm-gpu-cpu"]
    assert chosen["torch"] == Version(pins["torch"]).public
    assert not re.search(r"\+(recft\.)?cpu", " ".join(chosen.values()))
