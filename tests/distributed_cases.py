"""What each rank of a test job runs: ``python tests/distributed_cases.py CASE OUT [ARG]``.

``tests/test_distributed.py`` starts one process per rank with the environment torchrun
sets (``run_ranks``); every case writes its findings to ``OUT/rank<r>.json`` (and tensors
to ``OUT/rank<r>.safetensors``) for the test to check.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from recft.data import split, synthetic
from recft.models import TwoTowerConfig
from recft.models.two_tower import TwoTower
from recft.train import PretrainConfig, pretrain
from recft.train.batches import BatchBuilder
from recft.train.distributed import Distributed
from recft.train.losses import sampled_softmax_loss
from recft.train.objectives import RetrievalObjective
from recft.train.optimizers import OptimizerSettings, Optimizers
from recft.train.rank_batches import RankBatches, rank_slice, slice_batch
from recft.train.sharded_optimizers import ShardedOptimizers

from distributed_finetune_cases import case_finetune_resume  # noqa: E402 (tests/ is sys.path[0])
from distributed_serving_cases import case_serving  # noqa: E402

TYPES = ("table_wise", "row_wise", "column_wise", "data_parallel")
# every type at once: row-wise next to data-parallel in the item collection, column-wise
# user table (row-wise beside table/column-wise in one collection is refused: sharding.py)
MIXED = {"item_id": "row_wise", "user_id": "column_wise", "genres": "data_parallel",
         "year": "row_wise"}
TEMPERATURE = 0.1


def tiny_train():
    return split(synthetic("movies", size="tiny", seed=0).source, "random:0.8,0.1,0.1", seed=0)


def fresh_model(train, dim: int = 16) -> TwoTower:
    torch.manual_seed(0)
    config = TwoTowerConfig.for_data(train, embedding_dim=dim, dropout=0.0)
    features = train.item_features.categorical if train.item_features is not None else None
    return TwoTower(config, train.user_vocab, train.item_vocab, item_features=features)


def all_tables(kind: str) -> dict[str, str]:
    return {table: kind for table in MIXED}


def gathered(optimizers: Optimizers, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    with optimizers.plain_tables():
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


def max_diffs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float((a[k].double() - b[k].double()).abs().max()) for k in a}


# ---------------------------------------------------------------------------- cases
def case_forward(context: Distributed, out: Path, _: str) -> dict:
    """A sharded forward equals the unsharded one on the same weights, per sharding type
    (this rank's slice of a batch of 64)."""
    train = tiny_train().train
    found = {}
    for kind in TYPES:
        reference, model = fresh_model(train), fresh_model(train)
        sharded = ShardedOptimizers(model, OptimizerSettings(), context=context,
                                    sharding=all_tables(kind))
        builder = BatchBuilder.for_model(reference, train, batch_size=64, num_negatives=8)
        batch = next(iter(builder.batches(0, 0)))
        start, stop = rank_slice(len(batch), context.rank, context.world_size)
        local = slice_batch(batch, start, stop)
        with torch.no_grad():
            users, items = model(local.user_features, local.item_features)
            negatives = model.encode_item_features(local.negative_features)
            ref_users, ref_items = reference(local.user_features, local.item_features)
            ref_negatives = reference.encode_item_features(local.negative_features)
        found[kind] = max(float((users - ref_users).abs().max()),
                          float((items - ref_items).abs().max()),
                          float((negatives - ref_negatives).abs().max()))
        found[f"{kind}/plan"] = sorted({e["sharding"] for e in sharded.tables.summary.values()})
        sharded.close()
    return found


def blockwise_softmax(world_size: int):
    """The single-process objective a sharded in-batch softmax computes: one forward over
    the global batch, then the mean of the per-rank-block losses."""
    def objective(model, batch):
        users, items = model(batch.user_features, batch.item_features)
        total = users.new_zeros(())
        for rank in range(world_size):
            start, stop = rank_slice(len(batch), rank, world_size)
            block = slice_batch(batch, start, stop)
            total = total + (stop - start) / len(batch) * sampled_softmax_loss(
                users[start:stop], items[start:stop], TEMPERATURE, log_q=block.log_q,
                item_ids=block.item_ids)
        return total
    return objective


ITEM_TABLE = "item_ebc.embedding_bags.item_id.weight"
NEW_ITEMS = 50  # the last rows of the item table play rows appended for new ids


def row_roles(model: TwoTower, rates: str) -> dict:
    """``Optimizers`` options giving the last item rows another rate than the others:
    ``scaled``: pretrained rows at 0.25x (new rows at the full rate), ``masked``:
    pretrained rows fixed (``train_only_new_rows``)."""
    from recft.models.roles import ParameterRoles

    if not rates:
        return {}
    first_new = model.config.num_items - NEW_ITEMS
    roles = ParameterRoles.of(model).with_new_rows({ITEM_TABLE: first_new})
    if rates == "scaled":
        return {"roles": roles}
    return {"roles": roles, "masked_rows": {ITEM_TABLE: first_new}}


def case_steps(context: Distributed, out: Path, plan: str, rates: str = "") -> dict:
    """A few sharded steps vs one process on the same global batch whose in-batch
    negatives are the per-rank blocks (``rates``: see ``row_roles``)."""
    train = tiny_train().train
    choices = MIXED if plan == "mixed" else all_tables(plan)
    reference, model = fresh_model(train), fresh_model(train)
    settings = OptimizerSettings(pretrained_lr_scale=0.25 if rates == "scaled" else 1.0)
    ref_optimizers = Optimizers(reference, settings, **row_roles(reference, rates))
    optimizers = ShardedOptimizers(model, settings, context=context, sharding=choices,
                                   **row_roles(model, rates))
    global_builder = BatchBuilder.for_model(reference, train, batch_size=64)
    ranks = RankBatches(BatchBuilder.for_model(model, train, batch_size=64), context.rank,
                        context.world_size)
    sharded_loss = RetrievalObjective("softmax", TEMPERATURE)
    reference_loss = blockwise_softmax(context.world_size)
    for global_batch, local_batch in zip(global_builder.batches(0, 0), ranks.batches(0, 0)):
        loss = sharded_loss(model, local_batch) * ranks.loss_scale
        optimizers.zero_grad()
        loss.backward()
        optimizers.step()
        ref = reference_loss(reference, global_batch)
        ref_optimizers.zero_grad()
        ref.backward()
        ref_optimizers.step()
        if ranks.smallest_slice < 2 or optimizers.steps == 5:
            break
    expected = gathered(ref_optimizers, reference)
    final = gathered(optimizers, model)
    diffs = max_diffs(final, expected)
    start = fresh_model(train).state_dict()
    moved = max_diffs(expected, start)
    first_new = model.config.num_items - NEW_ITEMS
    rows = {"old_rows_moved": float((final[ITEM_TABLE][:first_new]
                                     - start[ITEM_TABLE][:first_new]).abs().max()),
            "new_rows_moved": float((final[ITEM_TABLE][first_new:]
                                     - start[ITEM_TABLE][first_new:]).abs().max())}
    return {"diffs": diffs, "moved": moved, "steps": optimizers.steps, **rows}


def sharded_pretrain(context: Distributed, out: Path, label: str, epochs: int,
                     resume_dir: Path | None = None):
    """pretrain() sharded; this rank's final weights go to ``out/<label>.rank<r>``."""
    parts = tiny_train()
    config = TwoTowerConfig.for_data(parts.train, embedding_dim=16)
    model, history = pretrain(parts.train, config, pretrain_config=PretrainConfig(
        epochs=epochs, batch_size=64, seed=0), resume_dir=resume_dir, progress=False,
        distributed=context, sharding=MIXED)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / f"{label}.rank{context.rank}.safetensors"))
    return model, history


def case_training(context: Distributed, out: Path, _: str) -> dict:
    """A sharded pretraining of 2 epochs (rank 0 writes its portable checkpoint to
    ``out/checkpoint``), then the same run killed after epoch 1 and resumed; then a sharded
    fine-tuning of that checkpoint, whole and stopped / resumed twice."""
    model, whole = sharded_pretrain(context, out, "whole", epochs=2)
    if context.is_main:
        model.save_pretrained(out / "checkpoint", training={"history": whole.to_dict()})
    resume = out / "resume"
    _, first = sharded_pretrain(context, out, "first", epochs=1, resume_dir=resume)
    saved = sorted(str(p.relative_to(resume)) for p in resume.rglob("*") if p.is_file())
    _, second = sharded_pretrain(context, out, "resumed", epochs=2, resume_dir=resume)
    context.barrier()  # rank 0 has written the checkpoint the fine-tuning starts from
    return {"whole_loss": whole.loss, "first_loss": first.loss, "resumed_loss": second.loss,
            "examples": whole.examples_seen, "saved": saved,
            **case_finetune_resume(context, out, out / "checkpoint")}


def case_mechanics(context: Distributed, out: Path, checkpoint: str) -> dict:
    """The cheap cases in one job (a job's start costs more than they do)."""
    return {"forward": case_forward(context, out, ""),
            "steps/mixed": case_steps(context, out, "mixed"),
            "steps/table_wise": case_steps(context, out, "table_wise"),
            "steps/scaled": case_steps(context, out, "mixed", "scaled"),
            "steps/masked": case_steps(context, out, "mixed", "masked"),
            "continue": case_continue(context, out, checkpoint),
            "frozen": case_frozen_stage(context, out, checkpoint),
            "validation": case_validation(context),
            "serving": case_serving(context, out, checkpoint, tiny_train())}


def case_validation(context: Distributed) -> dict:
    """Validation split over the ranks vs ``evaluate`` in one process, same model."""
    from recft.evaluate import evaluate
    from recft.train.rank_evaluation import evaluate_over_ranks

    parts = tiny_train()
    model = fresh_model(parts.train)
    options = {"exclude": parts.train, "ks": (5, 10), "metrics": ["ndcg", "recall", "mrr"]}
    single = evaluate(model, parts.valid, **options)
    split = evaluate_over_ranks(model, parts.valid, context, **options)
    return {"single": {k: single[k] for k in split}, "split": split}


def case_frozen_stage(context: Distributed, out: Path, checkpoint: str) -> dict:
    """finetune()'s frozen stage, sharded: the (grown) tables end bit-for-bit as aligned."""
    from recft.finetune import Recipe, finetune
    from recft.finetune.vocab_transfer import align_vocabulary
    from recft.models.checkpoint import load_pretrained

    target = split(synthetic("movies", size="tiny", seed=0).target, "random:0.8,0.1,0.1",
                   seed=0)
    recipe = Recipe.frozen_only(epochs=1)
    grown = load_pretrained(checkpoint)
    align_vocabulary(grown, target.train, init=recipe.new_id_init, seed=recipe.seed,
                     user_init=recipe.new_user_init)
    result = finetune(load_pretrained(checkpoint), target.train, recipe, valid=target.valid,
                      progress=False, distributed=context, sharding=MIXED)
    tuned = result.model.state_dict()
    tables = {k: v for k, v in grown.state_dict().items() if ".embedding_bags." in k}
    heads = [k for k in tuned if k.startswith("heads.")]
    return {"tables_moved": max_diffs({k: tuned[k] for k in tables}, tables),
            "heads": len(heads), "examples": result.examples_seen,
            "plan": sorted({e["sharding"] for e in context.plan.values()})}


def case_continue(context: Distributed, out: Path, checkpoint: str) -> dict:
    """A single-process checkpoint loads into a sharded run (identical weights, identical
    scores) and trains on."""
    from recft.models.checkpoint import load_pretrained

    parts = tiny_train()
    model = load_pretrained(checkpoint)
    single = {k: v.clone() for k, v in model.state_dict().items()}
    users = np.arange(20)
    before = model.score_users(users, parts.train)
    optimizers = ShardedOptimizers(model, OptimizerSettings(), context=context,
                                   sharding=MIXED)
    loaded = max(max_diffs(gathered(optimizers, model), single).values())
    ranks = RankBatches(BatchBuilder.for_model(model, parts.train, batch_size=32),
                        context.rank, context.world_size)
    objective = RetrievalObjective("softmax", TEMPERATURE)
    for step, batch in enumerate(ranks.batches(0, 0)):
        loss = objective(model, batch) * ranks.loss_scale
        optimizers.zero_grad()
        loss.backward()
        optimizers.step()
        if step == 3:
            break
    optimizers.close()
    moved = max(max_diffs(model.state_dict(), single).values())
    after_close = model.score_users(users, parts.train)
    return {"loaded": loaded, "moved": moved, "scores_before": before.tolist(),
            "finite": bool(torch.isfinite(after_close).all()), "loss": float(loss)}


CASES = {"mechanics": case_mechanics, "training": case_training, "steps": case_steps,
         "serving": lambda context, out, checkpoint: case_serving(context, out, checkpoint,
                                                                  tiny_train())}


def main() -> None:
    case, out = sys.argv[1], Path(sys.argv[2])
    arg = sys.argv[3] if len(sys.argv) > 3 else ""
    torch.set_num_threads(1)
    context = Distributed.from_environment()
    try:
        result = CASES[case](context, out, arg)
    finally:
        context.close()
    (out / f"rank{context.rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
