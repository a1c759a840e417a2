"""The resume state carries checksums: a damaged state is a one-line error, never a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recft.cli import EXIT_USAGE, main
from recft.errors import CheckpointError
from recft.models import checkpoint_io
from recft.train.state import load_training_state, save_training_state

TENSORS = {"model/weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
           "optim/0/step": torch.tensor([7], dtype=torch.int64)}
META = {"epoch": 2, "step": 40, "rng": {"torch": [1, 2, 3]}}


@pytest.fixture()
def resume_dir(tmp_path: Path) -> Path:
    save_training_state(tmp_path / "run.resume", TENSORS, META)
    return tmp_path / "run.resume"


def reseal(state: Path) -> None:
    """Checksums recomputed after an edit, as a careless copy tool or an attacker might."""
    (state / "checksums.json").unlink()
    checkpoint_io.write_checksums(state)


def truncate(state: Path) -> None:
    data = (state / "state.safetensors").read_bytes()
    (state / "state.safetensors").write_bytes(data[: len(data) // 2])


def flip_last_byte(state: Path) -> None:
    data = bytearray((state / "state.safetensors").read_bytes())
    data[-1] ^= 0x01  # inside the tensor data: the file still parses
    (state / "state.safetensors").write_bytes(bytes(data))


def test_round_trip_with_checksums(resume_dir: Path) -> None:
    tensors, meta = load_training_state(resume_dir)
    assert meta == META and set(tensors) == set(TENSORS)
    assert all(torch.equal(tensors[k], TENSORS[k]) for k in TENSORS)
    recorded = json.loads((resume_dir / "state" / "checksums.json").read_text())
    assert recorded["algorithm"] == "sha256"
    assert sorted(recorded["files"]) == ["state.json", "state.safetensors"]


def test_no_state_yet_is_none(tmp_path: Path) -> None:
    assert load_training_state(tmp_path / "fresh.resume") is None


CORRUPTIONS = {
    "truncated": (truncate, "checksum mismatch for state.safetensors"),
    "truncated-resealed": (lambda s: (truncate(s), reseal(s)),
                           "state.safetensors is corrupt or truncated"),
    "not-safetensors": (lambda s: ((s / "state.safetensors").write_text("hello"), reseal(s)),
                        "state.safetensors is corrupt or truncated"),
    "flipped-byte": (flip_last_byte, "checksum mismatch for state.safetensors"),
    "json-broken": (lambda s: ((s / "state.json").write_text("{"), reseal(s)),
                    "state.json is corrupt (not valid JSON"),
    "json-a-list": (lambda s: ((s / "state.json").write_text("[]"), reseal(s)),
                    "state.json is not a JSON object"),
    "manifest-a-list": (lambda s: (s / "checksums.json").write_text("[]"),
                        "checksums.json is corrupt"),
    "manifest-empty": (lambda s: (s / "checksums.json").write_text("{}"),
                       "checksums.json is corrupt"),
    "manifest-missing": (lambda s: (s / "checksums.json").unlink(), "lacks checksums.json"),
    "extra-file": (lambda s: (s / "notes.txt").write_text("x"),
                   "notes.txt is not listed in checksums.json"),
    "tensors-missing": (lambda s: (s / "state.safetensors").unlink(),
                        "state.safetensors is missing"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_damaged_state_is_one_line_naming_the_file_and_the_way_out(resume_dir, name) -> None:
    damage, expected = CORRUPTIONS[name]
    damage(resume_dir / "state")
    with pytest.raises(CheckpointError) as caught:  # never a SafetensorError or a resume
        load_training_state(resume_dir)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert f"delete {resume_dir} to start this run from the beginning" in message


def test_cli_refuses_to_resume_from_a_damaged_state(tmp_path, capsys) -> None:
    data = tmp_path / "events.csv"
    data.write_text("user_id,item_id\n" + "".join(f"u{u},i{u % 7}\n" for u in range(60)))
    out = tmp_path / "run"
    save_training_state(tmp_path / "run.resume", TENSORS, META)
    truncate(tmp_path / "run.resume" / "state")
    code = main(["pretrain", "-q", "--dataset", str(data), "--epochs", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE
    assert err[-1].startswith("recft: error: resume state")
    assert "state.safetensors" in err[-1] and f"delete {out}.resume" in err[-1]
    assert not out.exists()
