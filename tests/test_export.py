"""Export: the bundle serves the same top-k with torch + faiss alone, in a process without recft."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from recft.data import CategoricalFeature, Interactions, synthetic
from recft.models.finetuned import attach_heads
from recft.models.checkpoint import save_pretrained
from recft.models.two_tower import TwoTower, TwoTowerConfig
from recft.serving import Recommender, export
from recft.serving.index import resolve_kind
from recft.serving.user_tower import export_user_tower
from recft.train import PretrainConfig, pretrain

CLEAN_SCRIPT = r"""
import json, sys
from pathlib import Path
try:
    import recft
    sys.exit("recft is importable: the check would prove nothing")
except ModuleNotFoundError:
    pass
import faiss, numpy as np, torch
bundle, requests = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
manifest = json.loads((bundle / "manifest.json").read_text())
user_row = {u: r for r, u in enumerate(json.loads((bundle / "users.json").read_text())["ids"])}
items = json.loads((bundle / "items.json").read_text())["ids"]
item_row = {i: r for r, i in enumerate(items)}
tower = torch.export.load(str(bundle / manifest["user_tower"]["file"])).module()
index = faiss.read_index(str(bundle / manifest["index"]["file"]))
width = max(len(r["history"]) for r in requests)
history = torch.full((len(requests), width), -1, dtype=torch.int64)
for n, request in enumerate(requests):
    rows = [item_row[i] for i in request["history"]]
    history[n, :len(rows)] = torch.tensor(rows, dtype=torch.int64)
users = torch.tensor([user_row.get(r["user"], -1) for r in requests])
lengths = torch.tensor([len(r["history"]) for r in requests])
with torch.no_grad():
    embeddings = tower(users, history, lengths).numpy()
_, top = index.search(embeddings, 10)
print(json.dumps([[items[i] for i in row] for row in top]))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recommender, Interactions, Path]:
    folder = tmp_path_factory.mktemp("export")
    train = synthetic("movies", size="tiny", seed=0).source
    model, _ = pretrain(train, TwoTowerConfig(embedding_dim=16, tower_layers=(32, 16)),
                        pretrain_config=PretrainConfig(epochs=1), progress=False)
    checkpoint = save_pretrained(model, folder / "ckpt")
    out = export(checkpoint, folder / "bundle", index="exact", history=train)
    return Recommender.from_pretrained(checkpoint, history=train), train, out


def test_bundle_serves_the_same_top_k_without_recft(bundle, tmp_path) -> None:
    rec, train, out = bundle
    frame = train.to_pandas().sort_values("timestamp", kind="stable")
    by_user = frame.groupby("user_id", sort=False)["item_id"].agg(list)
    users = list(train.user_vocab.ids[::15])
    requests = [{"user": u, "history": by_user[u]} for u in users]
    requests.append({"user": "cold-user", "history": by_user[users[0]][-5:]})
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    site = sysconfig.get_paths()["purelib"]
    # -I -S: no user site, no .pth files (so recft's editable-install hook is inactive),
    # and only the environment's site-packages on the path: torch and faiss, not the repo
    command = [sys.executable, "-I", "-S", "-c",
               f"import sys; sys.path.append({site!r}); exec(sys.stdin.read())",
               str(out), str(tmp_path / "requests.json")]
    result = subprocess.run(command, input=CLEAN_SCRIPT, capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    histories = {r["user"]: r["history"] for r in requests}
    expected = rec.recommend([r["user"] for r in requests], histories=histories, k=10,
                             exclude_seen=False)
    assert served == expected.groupby("user", sort=False)["item"].agg(list).tolist()


def test_manifest_records_files_dims_and_exact_recall(bundle) -> None:
    rec, _, out = bundle
    manifest = json.loads((out / "manifest.json").read_text())
    for name, record in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == record["sha256"]
    config = rec.model.config
    assert manifest["model"]["dim"] == config.output_dim == 16
    assert manifest["model"]["temperature"] == config.temperature
    assert manifest["model"]["normalized"] is True
    assert manifest["index"]["recall@10"] == manifest["index"]["recall@100"] == 1.0
    assert [i["name"] for i in manifest["user_tower"]["inputs"]] == ["user_rows", "history",
                                                                      "lengths"]
    embeddings = np.load(out / "item_embeddings.npy")
    np.testing.assert_array_equal(embeddings, rec.embed_items()[1])
    assert json.loads((out / "users.json").read_text())["ids"] == rec.user_vocab.ids.tolist()


def test_ivf_index_with_measured_recall(bundle, tmp_path) -> None:
    rec, _, _ = bundle
    out = export(rec, tmp_path / "ivf", index="ivf", nlist=4, nprobe=2, num_queries=50)
    manifest = json.loads((out / "manifest.json").read_text())["index"]
    index = faiss.read_index(str(out / "index.faiss"))
    ivf = faiss.extract_index_ivf(index)
    assert (manifest["type"], ivf.nlist, ivf.nprobe, index.ntotal) == ("ivf", 4, 2, 200)
    assert manifest["recall_queries"] == 50 and "history" in manifest["query_source"]
    # probing 2 of 4 lists finds most, but not necessarily all, of the exact top-10
    assert 0.3 < manifest["recall@10"] <= 1.0 and 0.0 < manifest["recall@100"] <= 1.0
    assert resolve_kind("auto", 200) == "exact" and resolve_kind("auto", 50_001) == "ivf"


def test_user_tower_matches_encode_users_with_features_and_residual_head(tmp_path) -> None:
    torch.manual_seed(0)
    train = synthetic("movies", size="tiny", seed=0).source
    rng = np.random.default_rng(0)
    ages = CategoricalFeature.from_lists(
        [list(rng.choice(["a", "b", "c"], size=rng.integers(0, 3), replace=False))
         for _ in range(len(train.user_vocab))], name="age")
    model = TwoTower(TwoTowerConfig(embedding_dim=8, tower_layers=(16, 8), max_history=4),
                     train.user_vocab, train.item_vocab, user_features={"age": ages})
    model = attach_heads(model, ["retrieval"]).eval()
    with torch.no_grad():
        for parameter in model.heads.parameters():
            parameter.normal_()  # the residual starts at zero: make it count
    program = export_user_tower(model)
    torch.export.save(program, tmp_path / "tower.pt2")
    tower = torch.export.load(tmp_path / "tower.pt2").module()
    rec = Recommender(model, history=train)
    users = np.array(list(train.user_vocab.ids[:8]) + ["cold"], dtype=object)
    history = {"cold": list(train.item_vocab.ids[[5, 6, 7, 8, 9, 10]])}
    _, expected = rec.embed_users(users, histories=history)
    rows = train.user_vocab.encode(users, unknown="mark")
    stored = train.to_pandas().sort_values("timestamp", kind="stable")
    lists = [stored.loc[stored.user_id == u, "item_id"].tolist() for u in users[:8]]
    lists.append(history["cold"])
    width = max(map(len, lists))
    padded = torch.full((len(lists), width), -1, dtype=torch.int64)
    for n, items in enumerate(lists):
        padded[n, :len(items)] = torch.from_numpy(train.item_vocab.encode(items))
    lengths = torch.tensor([len(x) for x in lists])
    with torch.no_grad():
        got = tower(torch.from_numpy(rows), padded, lengths).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[0], got[1])  # different users, different embeddings


def test_export_command_writes_a_bundle_and_reports_recall(bundle, tmp_path, capsys) -> None:
    from recft.cli import main

    rec, _, _ = bundle
    out = tmp_path / "cli-bundle"
    assert main(["export", "--checkpoint", str(rec.checkpoint), "--out", str(out),
                 "--index", "ivf", "--nlist", "2", "--queries", "30"]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert "IndexIVFFlat" in printed and "recall@10" in printed
    assert manifest["index"]["nlist"] == 2 and manifest["index"]["recall_queries"] == 30
    assert "id only" in manifest["index"]["query_source"]  # no --histories given
    assert (out.stat().st_mode & 0o777) == 0o777 & ~_current_umask()


def _current_umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask
