"""One writer per output: a second writer is refused naming the holder; stale locks are broken."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recft import locks
from recft.cli import EXIT_USAGE, main
from recft.locks import OutputLockedError, host_name, output_lock

HOLD = """
import sys
from recft.locks import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


@pytest.fixture()
def holder(tmp_path: Path):
    """Another process holding the lock of ``tmp_path / "out"``."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "out")],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_lock_records_its_holder_and_is_removed_on_release(tmp_path: Path) -> None:
    with output_lock(tmp_path / "out") as lock_path:
        assert lock_path == tmp_path / ".out.lock"
        record = json.loads(lock_path.read_text())
        assert record["pid"] == os.getpid() and record["host"] == host_name()
    assert not lock_path.exists()


def test_second_writer_in_another_process_is_refused_naming_the_holder(tmp_path, holder):
    with pytest.raises(OutputLockedError) as caught:
        with output_lock(tmp_path / "out"):
            pass
    message = str(caught.value)
    assert f"is being written by pid {holder.pid} on {host_name()}" in message
    assert "\n" not in message
    with output_lock(tmp_path / "other"):  # a different output is free
        pass
    holder.stdin.close()  # the holder finishes and releases
    assert holder.wait(timeout=30) == 0
    with output_lock(tmp_path / "out"):
        pass


def test_second_writer_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with output_lock(tmp_path / "out"):
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
            with output_lock(tmp_path / "out"):
                pass


def test_lock_of_a_killed_holder_is_taken_over(tmp_path, holder, caplog) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert (tmp_path / ".out.lock").exists()  # kill -9 left the file behind
    with caplog.at_level(logging.INFO, logger="recft.locks"):
        with output_lock(tmp_path / "out") as lock_path:
            assert json.loads(lock_path.read_text())["pid"] == os.getpid()
    assert f"took over the lock left by pid {holder.pid}" in caplog.text


def test_stale_lock_file_of_a_dead_process_is_broken(tmp_path: Path) -> None:
    stale = {"pid": dead_pid(), "host": host_name(), "started": 0.0}
    (tmp_path / ".out.lock").write_text(json.dumps(stale))
    with output_lock(tmp_path / "out") as lock_path:
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()


def test_without_flock_the_record_decides(tmp_path, monkeypatch) -> None:
    """On a filesystem without flock, a live holder's record refuses; a dead one's is broken."""
    monkeypatch.setattr(locks, "_try_flock", lambda descriptor: None)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = {"pid": sleeper.pid, "host": host_name(), "started": 4e9}
        (tmp_path / ".out.lock").write_text(json.dumps(live))
        with pytest.raises(OutputLockedError, match=f"pid {sleeper.pid}"):
            with output_lock(tmp_path / "out"):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    (tmp_path / ".out.lock").write_text(json.dumps({**live, "pid": dead_pid()}))
    with output_lock(tmp_path / "out"):
        pass


def test_cli_second_pretrain_exits_2_naming_the_holder(tmp_path, holder) -> None:
    data = tmp_path / "events.csv"
    data.write_text("user_id,item_id\n" + "".join(f"u{u},i{u % 7}\n" for u in range(50)))
    result = subprocess.run([sys.executable, "-m", "recft", "pretrain", "--dataset", str(data),
                             "--epochs", "1", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("recft: error:") and f"pid {holder.pid}" in lines[-1]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [
    ["recommend", "--checkpoint", "ckpt", "--users", "users.csv"],
    ["export", "--checkpoint", "ckpt"],
    ["finetune", "--checkpoint", "ckpt", "--dataset", "synthetic"],
])
def test_cli_writers_are_locked_before_reading_anything(tmp_path, holder, capsys, command):
    """The lock comes first, so the refusal names the holder, not the missing inputs."""
    code = main([*command, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.startswith("recft: error:") and f"pid {holder.pid}" in err


def test_cli_locks_the_resume_folder_too(tmp_path, capsys) -> None:
    resume_holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "out.resume")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert resume_holder.stdout.readline().strip() == "held"
        code = main(["pretrain", "--dataset", "synthetic", "--out", str(tmp_path / "out")])
        assert code == EXIT_USAGE and f"pid {resume_holder.pid}" in capsys.readouterr().err
        assert not (tmp_path / ".out.lock").exists()  # the --out lock was released on the way
    finally:
        resume_holder.kill()
        resume_holder.wait()
