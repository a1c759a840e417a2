"""Checkpoint integrity that cannot be bypassed, NaN refusal, and safe directory replacement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from recft import io as recft_io
from recft.errors import CheckpointError
from recft.locks import host_name
from recft.models import checkpoint_io
from recft.models.checkpoint import CHECKSUMS_NAME, load_pretrained, save_pretrained
from recft.serving import Recommender, export
from conftest import build_checkerboard
from tiny_models import tiny_two_tower

WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def model():
    return tiny_two_tower(build_checkerboard(20), seed=0)


@pytest.fixture()
def checkpoint(model, tmp_path: Path) -> Path:
    return save_pretrained(model, tmp_path / "ckpt")


def scores(model) -> torch.Tensor:
    with torch.no_grad():
        return model.encode_items()


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the last byte of tensor data: the file still parses
    path.write_bytes(bytes(data))


def reseal(directory: Path) -> None:
    """A correct checksums.json for the directory as it is now (so later checks are reached)."""
    (directory / CHECKSUMS_NAME).unlink()
    checkpoint_io.write_checksums(directory)


def one_line_error(directory: Path) -> str:
    with pytest.raises(CheckpointError) as caught:
        load_pretrained(directory)
    message = str(caught.value)
    assert "\n" not in message
    return message


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- checksums.json schema and file set ---------------------------------------------------

def test_saved_manifest_lists_every_file_but_itself(checkpoint: Path) -> None:
    recorded = json.loads((checkpoint / CHECKSUMS_NAME).read_text())
    on_disk = {p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file()}
    assert recorded["algorithm"] == "sha256"
    assert set(recorded["files"]) == on_disk - {CHECKSUMS_NAME}


@pytest.mark.parametrize("manifest", [
    [], {}, {"algorithm": "sha256"}, {"algorithm": "sha256", "files": {}},
    {"algorithm": "sha256", "files": []}, {"algorithm": "md5", "files": {WEIGHTS: "0" * 64}},
    None, "sha256",
], ids=["list", "empty", "no-files", "files-empty", "files-list", "md5", "null", "string"])
def test_wrongly_shaped_manifest_is_corrupt_even_with_flipped_weights(checkpoint, manifest):
    flip_last_byte(checkpoint / WEIGHTS)
    (checkpoint / CHECKSUMS_NAME).write_text(json.dumps(manifest))
    message = one_line_error(checkpoint)
    assert f"{CHECKSUMS_NAME} is corrupt" in message


def test_digest_that_is_not_sha256_is_corrupt(checkpoint: Path) -> None:
    recorded = json.loads((checkpoint / CHECKSUMS_NAME).read_text())
    recorded["files"][WEIGHTS] = "skip"
    (checkpoint / CHECKSUMS_NAME).write_text(json.dumps(recorded))
    assert f"the entry for {WEIGHTS} is 'skip'" in one_line_error(checkpoint)


def test_manifest_without_the_weights_entry_cannot_hide_a_flipped_byte(checkpoint: Path):
    recorded = json.loads((checkpoint / CHECKSUMS_NAME).read_text())
    del recorded["files"][WEIGHTS]
    (checkpoint / CHECKSUMS_NAME).write_text(json.dumps(recorded))
    flip_last_byte(checkpoint / WEIGHTS)
    assert f"{WEIGHTS} is not listed in {CHECKSUMS_NAME}" in one_line_error(checkpoint)


def test_flipped_weight_byte_is_detected(checkpoint: Path) -> None:
    flip_last_byte(checkpoint / WEIGHTS)
    assert f"checksum mismatch for {WEIGHTS}" in one_line_error(checkpoint)


@pytest.mark.parametrize("extra", ["notes.txt", "vocab/extra.json", ".hidden"])
def test_file_added_after_saving_is_refused(checkpoint: Path, extra: str) -> None:
    (checkpoint / extra).write_text("{}")
    message = one_line_error(checkpoint)
    assert f"{extra} is not listed in {CHECKSUMS_NAME}" in message


def test_listed_file_that_is_gone_is_named(checkpoint: Path) -> None:
    (checkpoint / "README.md").unlink()
    assert "checkpoint file README.md is missing" in one_line_error(checkpoint)


# --- NaN / inf weights ------------------------------------------------------------------------

@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_at_load_naming_the_tensor(checkpoint, value) -> None:
    tensors = load_file(str(checkpoint / WEIGHTS))
    tensors["item_tower.0.weight"][3, 5] = value
    save_file(tensors, str(checkpoint / WEIGHTS))
    reseal(checkpoint)
    message = one_line_error(checkpoint)
    assert ("tensor 'item_tower.0.weight' has 1 NaN/inf values (first at index [3, 5], "
            f"value {value})") in message


def test_non_finite_weights_are_refused_at_save(model, tmp_path: Path) -> None:
    broken = tiny_two_tower(build_checkerboard(20), seed=0)
    with torch.no_grad():
        broken.user_tower[0].bias[2] = float("nan")
    with pytest.raises(CheckpointError, match=r"cannot save TwoTower: tensor "
                                              r"'user_tower.0.bias' has 1 NaN/inf values"):
        save_pretrained(broken, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()


def test_export_refuses_non_finite_weights_naming_the_tensor(tmp_path: Path) -> None:
    broken = tiny_two_tower(build_checkerboard(20), seed=0)
    with torch.no_grad():
        broken.item_ebc.embedding_bags["item_id"].weight[7, 0] = float("inf")
    with pytest.raises(CheckpointError, match=r"cannot export TwoTower: tensor "
                                              r"'item_ebc.embedding_bags.item_id.weight' has 1 "
                                              r"NaN/inf values \(first at index \[7, 0\]"):
        export(broken, tmp_path / "bundle", index="exact")
    assert not (tmp_path / "bundle").exists()


def test_export_refuses_non_finite_item_embeddings_from_finite_weights(tmp_path: Path) -> None:
    broken = tiny_two_tower(build_checkerboard(20), seed=0)
    with torch.no_grad():  # finite weights whose products overflow float32
        broken.item_tower[0].bias.fill_(3e38)
        broken.item_tower[2].weight.fill_(1.0)
    assert not np.isfinite(Recommender(broken).embed_items()[1]).all()
    with pytest.raises(CheckpointError, match=r"item tower gives NaN/inf embeddings for 20 of "
                                              r"20 items \(first ids: \[0, 1, 2, 3, 4\]\)"):
        export(broken, tmp_path / "bundle", index="exact")


# --- safe replacement ------------------------------------------------------------------------

def test_replacement_never_leaves_the_path_empty(model, checkpoint: Path) -> None:
    """A reader process polls the path while it is replaced many times: it never finds it
    missing or without its completion marker."""
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys
        path = {str(checkpoint / CHECKSUMS_NAME)!r}
        checks = misses = 0
        while not os.path.exists({str(checkpoint.parent / 'stop')!r}):
            checks += 1
            misses += not os.path.isfile(path)
        print(checks, misses)
    """)], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    for _ in range(25):
        save_pretrained(model, checkpoint)
    (checkpoint.parent / "stop").touch()
    checks, misses = map(int, reader.communicate(timeout=60)[0].split())
    assert checks > 1000 and misses == 0
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["ckpt", "stop"]


def test_failed_second_rename_keeps_the_old_checkpoint(model, checkpoint, monkeypatch) -> None:
    """Without an atomic exchange, the old directory is moved aside, then the new one moved
    in; when that second rename fails the old one is back at the path."""
    monkeypatch.setattr(recft_io, "_exchange", lambda first, second: False)
    real_rename = os.rename

    def rename(source, target):
        if Path(target) == checkpoint and Path(source).name.endswith(".tmp"):
            raise OSError("simulated crash between the renames")
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    other = tiny_two_tower(build_checkerboard(20), seed=1)
    with pytest.raises(OSError, match="simulated crash"):
        save_pretrained(other, checkpoint)
    monkeypatch.setattr(os, "rename", real_rename)
    assert torch.equal(scores(load_pretrained(checkpoint)), scores(model))
    assert [p.name for p in checkpoint.parent.iterdir()] == ["ckpt"]


KILL_BETWEEN_RENAMES = """
import os, sys
from pathlib import Path
from recft import io
io._exchange = lambda first, second: False
target, real_rename = Path(sys.argv[1]), os.rename
def rename(source, destination):
    if Path(destination) == target and Path(source).name.endswith(".tmp"):
        os._exit(9)  # killed after moving the old one aside, before moving the new one in
    real_rename(source, destination)
os.rename = rename
with io.atomic_directory(target) as staging:
    (staging / "half-finished").write_text("new")
"""


def test_kill_between_renames_is_recovered_by_the_next_load(model, checkpoint) -> None:
    killed = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(checkpoint)])
    assert killed.returncode == 9
    left = sorted(p.name for p in checkpoint.parent.iterdir())
    assert "ckpt" not in left and any(".ckpt.old-" in name for name in left)
    assert torch.equal(scores(load_pretrained(checkpoint)), scores(model))  # moved back
    save_pretrained(model, checkpoint)  # the next save removes the dead writer's staging
    assert [p.name for p in checkpoint.parent.iterdir()] == ["ckpt"]


def test_next_save_removes_only_leftovers_of_dead_writers(model, checkpoint) -> None:
    parent, pid, host = checkpoint.parent, dead_pid(), host_name()
    stale = [parent / f".ckpt.{pid}@{host}.abc123.tmp", parent / f".ckpt.old-{pid}",
             parent / f".ckpt.old-{pid}@{host}.def456"]
    kept = [parent / f".ckpt.{os.getpid()}@{host}.live.tmp",  # a save in progress here
            parent / f".ckpt.{pid}@elsewhere.x.tmp",  # another host's: its pid says nothing
            parent / f".other.{pid}@{host}.abc.tmp"]  # another output's
    for folder in stale + kept:
        folder.mkdir()
        (folder / "file").write_text("x")
    save_pretrained(model, checkpoint)
    assert sorted(p.name for p in parent.iterdir()) == sorted(["ckpt", *(p.name for p in kept)])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc start times")
def test_a_reused_pid_does_not_protect_a_leftover(model, checkpoint) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        leftover = checkpoint.parent / f".ckpt.{sleeper.pid}@{host_name()}.old1.tmp"
        leftover.mkdir()
        hour_ago = time.time() - 3600  # written before the live process with that pid began
        os.utime(leftover, (hour_ago, hour_ago))
        recent = checkpoint.parent / f".ckpt.{sleeper.pid}@{host_name()}.new1.tmp"
        recent.mkdir()
        save_pretrained(model, checkpoint)
        assert not leftover.exists() and recent.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_recovery_leaves_a_live_writers_moved_aside_copy_alone(checkpoint: Path) -> None:
    moved = checkpoint.with_name(f".ckpt.old-{os.getpid()}@{host_name()}.r1")
    os.rename(checkpoint, moved)  # as this (live) process would, between its two renames
    assert recft_io.recover_directory(checkpoint) is False and not checkpoint.exists()
    os.rename(moved, checkpoint.with_name(f".ckpt.old-{dead_pid()}"))
    assert recft_io.recover_directory(checkpoint) is True
    assert load_pretrained(checkpoint) is not None
