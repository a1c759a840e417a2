"""restored_environment puts back what it found: set values, and unset ones."""

from __future__ import annotations

import os

import pytest

from recft.process_env import restored_environment


def test_values_and_absences_come_back_even_after_an_error(monkeypatch) -> None:
    monkeypatch.setenv("RECFT_TEST_SET", "before")
    monkeypatch.delenv("RECFT_TEST_UNSET", raising=False)
    with pytest.raises(RuntimeError):
        with restored_environment(["RECFT_TEST_SET", "RECFT_TEST_UNSET"]):
            os.environ["RECFT_TEST_SET"] = "during"
            os.environ["RECFT_TEST_UNSET"] = "during"
            raise RuntimeError("the child failed")
    assert os.environ["RECFT_TEST_SET"] == "before"
    assert "RECFT_TEST_UNSET" not in os.environ
