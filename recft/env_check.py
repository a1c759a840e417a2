"""Post-install check: the torch / fbgemm / torchrec trio imports and nothing else is broken.

Run by ``make setup``. ``pip check`` always reports one expected line, because torchrec
declares the CUDA ``fbgemm-gpu`` while the CPU closure ships ``fbgemm-gpu-cpu`` (the same
``fbgemm_gpu`` import package). Any other complaint fails the install.
"""

from __future__ import annotations

import re
import subprocess
import sys

EXPECTED_PIP_CHECK = re.compile(r"^torchrec \S+ requires fbgemm-gpu, which is not installed\.$")


def main() -> int:
    problems: list[str] = []
    result = subprocess.run(
        [sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    for line in result.stdout.splitlines():
        if line.strip() and not EXPECTED_PIP_CHECK.match(line.strip()):
            if not line.startswith("No broken requirements"):
                problems.append(f"pip check: {line}")
    try:
        import torch
        import fbgemm_gpu  # noqa: F401
        import torchrec  # noqa: F401
    except Exception as error:  # any import failure is fatal to the install
        problems.append(f"import failed: {type(error).__name__}: {error}")
    else:
        if torch.version.cuda is None and "+cpu" not in torch.__version__:
            pass  # a local CPU build without the suffix is fine
    if problems:
        print("recft environment check FAILED:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    import torch

    device = "cuda " + str(torch.version.cuda) if torch.version.cuda else "cpu"
    print(f"recft environment OK: torch {torch.__version__} ({device}), torchrec {torchrec.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
