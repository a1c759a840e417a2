"""Post-install check: torch / fbgemm / torchrec import, ``pip check`` is clean, and the
fbgemm build matches torch (CPU torch with the CPU build, CUDA torch with the CUDA one).

Run by ``make setup`` and ``make setup-gpu``; production images can run it after installing
the wheel (``python -m recft.env_check``). A CPU install satisfies torchrec's ``fbgemm-gpu``
requirement with the metadata-only stand-in (``requirements/fbgemm_gpu_standin.py``), so
``pip check`` has nothing to report on either kind of machine.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

STANDIN_HINT = ("install the CPU stand-in for fbgemm-gpu: python requirements/fbgemm_gpu_standin.py "
                "build/wheels-cpu && pip install --no-deps build/wheels-cpu/*.whl (or rerun make setup)")


def is_metadata_only(dist: metadata.Distribution) -> bool:
    """True for the stand-in: a distribution whose files are only its own ``.dist-info``."""
    files = dist.files or []
    return all(str(path).split("/")[0].endswith(".dist-info") for path in files)


def fbgemm_problems(torch_cuda: str | None) -> list[str]:
    """Which fbgemm distributions are installed, judged against torch's build."""
    try:
        fbgemm = metadata.distribution("fbgemm-gpu")
    except metadata.PackageNotFoundError:
        fbgemm = None
    try:
        cpu_build = metadata.distribution("fbgemm-gpu-cpu")
    except metadata.PackageNotFoundError:
        cpu_build = None
    cuda_build = fbgemm if fbgemm is not None and not is_metadata_only(fbgemm) else None
    if cuda_build is not None and cpu_build is not None:
        return [f"fbgemm-gpu {cuda_build.version} (CUDA) and fbgemm-gpu-cpu {cpu_build.version} "
                "are both installed and overwrite each other's fbgemm_gpu package: uninstall one"]
    if torch_cuda is None and cuda_build is not None:
        return [f"the CUDA fbgemm-gpu {cuda_build.version} is installed with a CPU torch: "
                f"uninstall it, install fbgemm-gpu-cpu and {STANDIN_HINT}"]
    if torch_cuda is not None and cuda_build is None:
        return [f"torch is a CUDA build ({torch_cuda}) but fbgemm is the CPU build: "
                "install the CUDA fbgemm-gpu (make setup-gpu, or recft[gpu] with "
                "requirements/constraints-gpu.txt)"]
    return []


def pip_check_problems() -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    problems = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith("No broken requirements"):
            continue
        if line.startswith("torchrec ") and "requires fbgemm-gpu, which is not installed" in line:
            line += f" ({STANDIN_HINT})"
        problems.append(f"pip check: {line}")
    if result.returncode != 0 and not problems:
        problems.append(f"pip check failed: {result.stderr.strip()[-500:]}")
    return problems


def main() -> int:
    problems = pip_check_problems()
    try:
        import torch
        import fbgemm_gpu  # noqa: F401
        import torchrec
    except Exception as error:  # any import failure is fatal to the install
        problems.append(f"import failed: {type(error).__name__}: {error}")
    else:
        problems += fbgemm_problems(torch.version.cuda)
    if problems:
        print("recft environment check FAILED:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    device = "cuda " + str(torch.version.cuda) if torch.version.cuda else "cpu"
    print(f"recft environment OK: torch {torch.__version__} ({device}), torchrec {torchrec.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
