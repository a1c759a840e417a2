"""Batch jobs: recommend()'s lists, and a killed job resumes without losing or repeating users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recft.cli import EXIT_USAGE, main
from recft.cli.serving import FAIL_AFTER_ENV
from recft.data import synthetic
from recft.errors import DataError
from recft.models.checkpoint import save_pretrained
from recft.models.two_tower import TwoTowerConfig
from recft.serving import Recommender, ServingWarning, read_users, recommend_batch
from recft.train import PretrainConfig, pretrain

K = 5
CHUNK = 25


@pytest.fixture(scope="module")
def job_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint, a histories CSV (its training data) and a users CSV of 130 users:
    120 known, 9 unknown to the model, and one unknown with a history (``cold``)."""
    folder = tmp_path_factory.mktemp("batch")
    train = synthetic("movies", size="tiny", seed=0).source
    model, _ = pretrain(train, TwoTowerConfig(embedding_dim=16, tower_layers=(32, 16)),
                        pretrain_config=PretrainConfig(epochs=1), progress=False)
    histories = train.to_pandas()
    cold = pd.DataFrame({"user_id": ["cold"] * 3, "item_id": train.item_vocab.ids[[1, 2, 3]],
                         "rating": 4.0, "timestamp": histories["timestamp"].iloc[:3].to_numpy()})
    pd.concat([histories, cold]).to_csv(folder / "histories.csv", index=False)
    users = list(train.user_vocab.ids[:120]) + [f"ghost-{i}" for i in range(9)] + ["cold"]
    pd.DataFrame({"user_id": users}).to_csv(folder / "users.csv", index=False)
    return {"checkpoint": save_pretrained(model, folder / "ckpt"),
            "histories": folder / "histories.csv", "users": folder / "users.csv"}


def _recommender(job_inputs: dict[str, Path]) -> Recommender:
    return Recommender.from_pretrained(job_inputs["checkpoint"])


def _histories(job_inputs: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(job_inputs["histories"], dtype={"user_id": str, "item_id": str})


def test_batch_output_equals_recommend(job_inputs, tmp_path) -> None:
    rec = _recommender(job_inputs)
    users = read_users(job_inputs["users"])
    out = tmp_path / "recs.parquet"
    with pytest.warns(ServingWarning, match="9 user"):
        recommend_batch(rec, users, out, k=K, chunk_size=CHUNK,
                        histories=_histories(job_inputs), progress=False)
    with pytest.warns(ServingWarning, match="9 user"):
        expected = rec.recommend(users, histories=_histories(job_inputs), k=K)
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected)
    assert not (tmp_path / "recs.parquet.parts").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recs.parquet"]


def test_killed_job_resumes_to_the_uninterrupted_result(job_inputs, tmp_path) -> None:
    out = tmp_path / "recs.parquet"
    command = [sys.executable, "-m", "recft", "recommend", "-q",
               "--checkpoint", str(job_inputs["checkpoint"]), "--users", str(job_inputs["users"]),
               "--histories", str(job_inputs["histories"]), "--k", str(K), "--out", str(out),
               "--chunk-size", str(CHUNK)]
    killed = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, FAIL_AFTER_ENV: "2"})
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL: no cleanup ran
    state = tmp_path / "recs.parquet.parts"
    manifest = json.loads((state / "manifest.json").read_text())
    assert manifest["completed"] == [0, 1] and manifest["num_chunks"] == 6
    assert not out.exists()

    resumed = subprocess.run(command, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if k != FAIL_AFTER_ENV})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not state.exists()
    result = pd.read_parquet(out)
    users = read_users(job_inputs["users"]).tolist()
    assert result["user"].drop_duplicates().tolist() == users  # each once, in order
    assert (result.groupby("user")["rank"].count() == K).all()
    uninterrupted = tmp_path / "straight.parquet"
    with pytest.warns(ServingWarning):
        recommend_batch(_recommender(job_inputs), users, uninterrupted, k=K, chunk_size=CHUNK,
                        histories=_histories(job_inputs), progress=False)
    pd.testing.assert_frame_equal(result, pd.read_parquet(uninterrupted))


def test_different_inputs_refuse_to_resume_until_restart(job_inputs, tmp_path, capsys) -> None:
    rec = _recommender(job_inputs)
    users = read_users(job_inputs["users"])[:100]
    out = tmp_path / "recs.parquet"

    def stop(index: int) -> None:
        if index == 1:
            raise KeyboardInterrupt  # interrupted after two chunks were recorded

    with pytest.raises(KeyboardInterrupt):
        recommend_batch(rec, users, out, k=K, chunk_size=CHUNK, progress=False, on_chunk=stop)
    with pytest.raises(DataError, match="differs in: k") as error:
        recommend_batch(rec, users, out, k=K + 1, chunk_size=CHUNK, progress=False)
    assert "--restart" in (error.value.hint or "")
    users_file = tmp_path / "users.csv"
    pd.DataFrame({"user_id": users[:50]}).to_csv(users_file, index=False)
    code = main(["recommend", "-q", "--checkpoint", str(job_inputs["checkpoint"]),
                 "--users", str(users_file), "--k", str(K), "--out", str(out),
                 "--chunk-size", str(CHUNK)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "differs in: num_users, users" in err and "--restart" in err
    done = []
    recommend_batch(rec, users, out, k=K + 1, chunk_size=CHUNK, progress=False, restart=True,
                    on_chunk=done.append)
    assert done == [0, 1, 2, 3]  # nothing reused from the discarded state
    assert pd.read_parquet(out).groupby("user").size().eq(K + 1).all()


def test_read_users_keeps_text_ids_and_names_bad_lines(tmp_path) -> None:
    good = tmp_path / "users.csv"
    good.write_text("user_id,segment\n007,a\n42,b\n")
    assert read_users(good).tolist() == ["007", "42"]
    blank = tmp_path / "blank.csv"
    blank.write_text("user_id\n1\n\n2\n")
    with pytest.raises(DataError, match="line 3"):
        read_users(blank)
    with pytest.raises(DataError, match="no user column"):
        read_users(good, column="uid")
    assert np.array_equal(read_users(good, column="segment"), ["a", "b"])
