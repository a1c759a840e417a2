"""Importing torchrec's examples/retrieval TwoTower state dict reproduces its embeddings."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchrec.modules.embedding_configs import EmbeddingBagConfig
from torchrec.modules.embedding_modules import EmbeddingBagCollection
from torchrec.modules.mlp import MLP
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from recft.data.vocabulary import Vocabulary
from recft.errors import CheckpointError
from recft.models.checkpoint import load_pretrained, save_pretrained
from recft.models.torchrec_import import import_torchrec_state_dict

NUM_EMBEDDINGS, DIM, LAYERS = 16, 4, [6, 3]


class ExampleTwoTower(nn.Module):
    """torchrec examples/retrieval/modules/two_tower.py TwoTower, minus faiss: one EBC with
    a query and a candidate table, and an MLP projection per tower."""

    def __init__(self) -> None:
        super().__init__()
        self.ebc = EmbeddingBagCollection(tables=[
            EmbeddingBagConfig(name=f"t_{name}", embedding_dim=DIM, num_embeddings=NUM_EMBEDDINGS,
                               feature_names=[name])
            for name in ("userId", "movieId")])
        self.query_proj = MLP(in_size=DIM, layer_sizes=LAYERS)
        self.candidate_proj = MLP(in_size=DIM, layer_sizes=LAYERS)

    def embed(self, users: list[int], items: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        def tower(feature: str, ids: list[int], proj: nn.Module) -> torch.Tensor:
            kjt = KeyedJaggedTensor.from_lengths_sync(
                ["userId", "movieId"], torch.tensor(ids),
                torch.tensor([1] * len(ids) + [0] * len(ids) if feature == "userId"
                             else [0] * len(ids) + [1] * len(ids)))
            return proj(self.ebc(kjt)[feature])

        with torch.no_grad():
            return (tower("userId", users, self.query_proj),
                    tower("movieId", items, self.candidate_proj))


class TrainTask(nn.Module):
    """The example's TwoTowerTrainTask wrapper: its state dict prefixes ``two_tower.``."""

    def __init__(self) -> None:
        super().__init__()
        self.two_tower = ExampleTwoTower()
        self.loss_fn = nn.BCEWithLogitsLoss()


USERS, ITEMS = [3, 7, 11], [0, 5, 9, 15]


@pytest.fixture(scope="module")
def reference() -> TrainTask:
    torch.manual_seed(0)
    task = TrainTask()
    with torch.no_grad():  # non-zero biases, so a dropped bias would show
        for module in task.modules():
            if isinstance(module, nn.Linear):
                module.bias.uniform_(-0.5, 0.5)
        for proj in (task.two_tower.query_proj, task.two_tower.candidate_proj):
            proj._mlp[-1]._linear.bias[0] = -5.0  # output unit 0 is always cut by the final ReLU
    return task


def imported(source, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the output-ReLU fallback warning, if it applies
        return import_torchrec_state_dict(source, Vocabulary(USERS, name="user"),
                                          Vocabulary(ITEMS, name="item"), **kwargs)


def test_embeddings_and_scores_match_reference(reference: TrainTask) -> None:
    model = imported(reference.state_dict())
    want_users, want_items = reference.two_tower.embed(USERS, ITEMS)
    with torch.no_grad():
        users = model.encode_users(np.arange(len(USERS)))
        items = model.encode_items()
        scores = model.score(users, items)
    assert (want_users[:, 0] == 0).all() and (want_users[:, 1:] > 0).any()  # final ReLU matters
    torch.testing.assert_close(users, want_users, rtol=0, atol=1e-6)
    torch.testing.assert_close(items, want_items, rtol=0, atol=1e-6)
    # the example's logit: (query * candidate).sum(dim=1) for each pair
    torch.testing.assert_close(scores, want_users @ want_items.T, rtol=0, atol=1e-6)
    assert torch.equal(model.state_dict()["user_ebc.embedding_bags.user_id.weight"],
                       reference.two_tower.ebc.embedding_bags["t_userId"].weight[USERS])


def test_pt_file_and_row_index(reference: TrainTask, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(reference.two_tower.state_dict(), path)  # no wrapper prefix this time
    model = imported(path)
    assert torch.equal(model.encode_items(), imported(reference.state_dict()).encode_items())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = import_torchrec_state_dict(path, table_index="row")  # identity vocabularies
    assert len(whole.item_vocab) == NUM_EMBEDDINGS
    assert torch.equal(whole.encode_items()[ITEMS], model.encode_items())


def test_errors_name_the_problem(reference: TrainTask, tmp_path: Path) -> None:
    state = reference.state_dict()
    with pytest.raises(CheckpointError,
                       match=r"no '\*ebc.embedding_bags.t_userID.weight'.*t_movieId"):
        imported(state, query_table="t_userID")
    with pytest.raises(CheckpointError, match=r"1 item id\(s\) have no row.*\[99\]"):
        import_torchrec_state_dict(state, Vocabulary(USERS), Vocabulary([1, 99], name="item"))
    with pytest.raises(CheckpointError, match="has 16 rows but the vocabulary has 3"):
        imported(state, table_index="row")
    broken = {k: v for k, v in state.items() if "candidate_proj._mlp.1" not in k}
    broken["two_tower.candidate_proj._mlp.2._linear.weight"] = torch.zeros(3, 6)
    with pytest.raises(CheckpointError, match=r"candidate_proj layers are not numbered 0..n-1"):
        imported(broken)
    (tmp_path / "evil.pt").write_bytes(b"\x80\x04not a state dict")
    with pytest.raises(CheckpointError, match="evil.pt: cannot read as a weights-only state dict"):
        imported(tmp_path / "evil.pt")


def test_imported_model_survives_a_checkpoint(reference: TrainTask, tmp_path: Path) -> None:
    model = imported(reference.state_dict())
    loaded = load_pretrained(save_pretrained(model, tmp_path / "ckpt"))
    users = np.arange(len(USERS))
    assert torch.equal(loaded.encode_users(users), model.encode_users(users))
    assert torch.equal(loaded.encode_items(), model.encode_items())
