"""Write the CPU stand-in for ``fbgemm-gpu``: a metadata-only wheel that requires
``fbgemm-gpu-cpu``.

Why: torchrec's wheel declares ``Requires-Dist: fbgemm-gpu``, the CUDA build (gigabytes).
PyPI's CPU build is another distribution, ``fbgemm-gpu-cpu``, shipping the same
``fbgemm_gpu`` import package, so a resolving ``pip install torchrec`` on a CPU machine
pulls CUDA, and ``pip check`` complains when it is left out. The stand-in is named
``fbgemm-gpu`` and versioned ``<cpu version>+recft.cpu`` (a PEP 440 local version that no
index publishes), contains no files, and requires the CPU build. recft's ``cpu`` extra pins
that exact version, so a wheel install either finds the stand-in or fails: it can never fall
back to the CUDA wheel. ``make setup`` installs it by path; no lock pins it.

Usage (stdlib only: it runs before anything is installed)::

    python requirements/fbgemm_gpu_standin.py OUT_DIR [--lock requirements/cpu.lock]

prints the wheel's path. The ``fbgemm-gpu-cpu`` version comes from the lock; the same lock
and inputs always give the same bytes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

LOCAL_LABEL = "recft.cpu"
CPU_DISTRIBUTION = "fbgemm-gpu-cpu"
DEFAULT_LOCK = Path(__file__).resolve().parent / "cpu.lock"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: reproducible wheels


def locked_version(lock: Path, name: str) -> str:
    """The ``name==VERSION`` pin of ``lock`` (names compared as PEP 503 normalises them)."""
    wanted = _normalise(name)
    for number, line in enumerate(lock.read_text(encoding="utf-8").splitlines(), start=1):
        match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*==\s*([^\s;#]+)\s*(#.*)?", line)
        if match and _normalise(match.group(1)) == wanted:
            return match.group(2)
    raise SystemExit(f"{lock}: no '{name}==VERSION' line")


def write_metadata_wheel(out_dir: Path, name: str, version: str, requires: list[str],
                         summary: str) -> Path:
    """A pure-Python wheel holding only its ``.dist-info`` (METADATA, WHEEL, RECORD)."""
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    info = f"{stem}.dist-info"
    metadata = "".join([
        "Metadata-Version: 2.1\n",
        f"Name: {name}\n",
        f"Version: {version}\n",
        f"Summary: {summary}\n",
        *(f"Requires-Dist: {requirement}\n" for requirement in requires),
    ])
    wheel = ("Wheel-Version: 1.0\nGenerator: recft requirements/fbgemm_gpu_standin.py\n"
             "Root-Is-Purelib: true\nTag: py3-none-any\n")
    files = {f"{info}/METADATA": metadata.encode(), f"{info}/WHEEL": wheel.encode()}
    record = "".join(f"{path},sha256={_digest(data)},{len(data)}\n" for path, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}-py3-none-any.whl"
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            entry = zipfile.ZipInfo(member, date_time=_ZIP_EPOCH)
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
    partial.replace(path)  # a reader never sees half a wheel
    return path


def write_standin(out_dir: Path, lock: Path = DEFAULT_LOCK) -> Path:
    cpu_version = locked_version(lock, CPU_DISTRIBUTION)
    return write_metadata_wheel(
        out_dir, "fbgemm-gpu", f"{cpu_version}+{LOCAL_LABEL}",
        requires=[f"{CPU_DISTRIBUTION}=={cpu_version}"],
        summary=f"CPU stand-in for the CUDA fbgemm-gpu: no files; requires {CPU_DISTRIBUTION}, "
        "which provides the fbgemm_gpu package (recft requirements/fbgemm_gpu_standin.py)",
    )


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the wheel into")
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK,
                        help=f"lock holding the {CPU_DISTRIBUTION} pin (default requirements/cpu.lock)")
    args = parser.parse_args(argv)
    print(write_standin(args.out_dir, args.lock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
