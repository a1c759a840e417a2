"""The stage commands end to end on tiny synthetic data: pretrain -> evaluate -> finetune -> compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recft.cli import main


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "base"
    assert main(["pretrain", "--dataset", "synthetic:tiny", "--epochs", "2", "--out", str(out), "-q"]) == 0
    return out


def test_pretrain_writes_a_checkpoint_with_test_metrics_and_protocol(base: Path) -> None:
    training = json.loads((base / "training.json").read_text())
    assert training["dataset"] == "synthetic:tiny" and training["split"] == "random:0.8,0.1,0.1"
    assert training["protocol"]["ranking"] == "full" and training["protocol"]["exclude_seen"]
    assert 0 < training["metrics"]["ndcg@10"] <= 1
    assert not base.with_name("base.resume").exists()  # resume state removed after success


def test_evaluate_json_reproduces_the_checkpoint_metrics(base: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(base), "--dataset", "synthetic:tiny", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    saved = json.loads((base / "training.json").read_text())["metrics"]
    for key in ("ndcg@10", "recall@10", "precision@10", "hit@10", "mrr@10", "map@10"):
        assert result["metrics"][key] == pytest.approx(saved[key], abs=1e-9)


def test_evaluate_aligns_a_checkpoint_with_another_dataset(base: Path, capsys, caplog) -> None:
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(base), "--dataset", "synthetic-target:tiny",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"]["num_items"] == 210  # the target's catalog is ranked
    assert "150 users and 20 items" in caplog.text and "unknown to the checkpoint" in caplog.text


def test_finetune_on_new_users_and_items_saves_a_loadable_checkpoint(base: Path, capsys) -> None:
    out = base.parent / "tuned"
    capsys.readouterr()
    assert main(["finetune", "--checkpoint", str(base), "--dataset", "synthetic-target:tiny",
                 "--preset", "frozen-only", "--out", str(out), "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["alignment"]["counts"]["users"] == {"matched": 0, "new": 150}
    assert summary["alignment"]["counts"]["items"]["new"] > 0
    training = json.loads((out / "training.json").read_text())
    assert training["finetune"]["base"] == str(base)
    from recft.models.checkpoint import load_pretrained

    model = load_pretrained(out)
    assert len(model.user_vocab) == 300 + 150  # source users kept, target users added
    # the saved fine-tuned checkpoint evaluates on its target data, reproducing finetune's test
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--dataset", "synthetic-target:tiny",
                 "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["metrics"]
    assert again["ndcg@10"] == pytest.approx(training["metrics"]["ndcg@10"], abs=1e-9)


def test_compare_writes_rows_for_every_strategy_and_fraction(base: Path) -> None:
    out = base.parent / "compare"
    assert main(["compare", "--checkpoint", str(base), "--dataset", "synthetic-target:tiny",
                 "--fractions", "0.5,1.0", "--strategies", "popularity,zero-shot,frozen",
                 "--out", str(out), "-q"]) == 0
    rows = json.loads((out / "comparison.json").read_text())
    assert isinstance(rows, list)
    assert "| frozen |" in (out / "comparison.md").read_text()
    assert {(r["strategy"], r["fraction"]) for r in rows} == {
        (s, f) for s in ("popularity", "zero-shot", "frozen") for f in (0.5, 1.0)}
    for row in rows:
        assert set(row["compute"]) >= {"wall_seconds", "examples_seen", "trainable_parameters"}
        assert "ndcg@10" in row["metrics"]


def test_finetune_reads_a_yaml_recipe(base: Path, capsys) -> None:
    from recft.finetune import Recipe

    recipe_file = base.parent / "recipe.yaml"
    Recipe.frozen_only(epochs=1).save(recipe_file)
    assert "frozen" in recipe_file.read_text()
    out = base.parent / "tuned-from-yaml"
    assert main(["finetune", "--checkpoint", str(base), "--dataset", "synthetic-target:tiny",
                 "--recipe", str(recipe_file), "--out", str(out), "-q"]) == 0
    training = json.loads((out / "training.json").read_text())
    stages = training["finetune"]["recipe"]["stages"]
    assert [s["name"] for s in stages] == ["frozen"] and stages[0]["epochs"] == 1
    capsys.readouterr()
    recipe_file.write_text("stages: []\n")
    assert main(["finetune", "--checkpoint", str(base), "--dataset", "synthetic-target:tiny",
                 "--recipe", str(recipe_file), "--out", str(out)]) == 2
    assert "at least one stage" in capsys.readouterr().err
