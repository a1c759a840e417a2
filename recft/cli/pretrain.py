"""``recft pretrain``: train a base two-tower model and save it as a checkpoint."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from recft.cli.common import add_dataset_args, add_split_args, load_dataset, print_json
from recft.cli.launch import add_launch_args, dispatch
from recft.locks import locks_outputs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pretrain a two-tower base model and save a checkpoint with its model card",
        description="Pretrain a two-tower model on a dataset split, evaluate it on the test part "
        "(full ranking, seen items excluded) and save a portable checkpoint. A killed run "
        "resumes from <out>.resume (next to <out>) when started again with the same flags.",
        epilog="example: recft pretrain --dataset ml-100k --split random:0.8,0.1,0.1 --seed 0 --out runs/ml100k",
    )
    add_dataset_args(parser)
    add_split_args(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="checkpoint directory to write")
    model = parser.add_argument_group("model and training (defaults: recft.models.TwoTowerConfig / recft.train.PretrainConfig)")
    model.add_argument("--embedding-dim", type=int)
    model.add_argument("--temperature", type=float)
    model.add_argument("--epochs", type=int)
    model.add_argument("--batch-size", type=int)
    model.add_argument("--lr", type=float, help="learning rate of the dense tower layers")
    model.add_argument("--embedding-lr", type=float, help="learning rate of the embedding tables")
    model.add_argument("--loss", choices=["softmax", "bpr"])
    model.add_argument("--num-negatives", type=int, help="extra uniformly sampled negatives per batch")
    model.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    text = parser.add_argument_group("items as text (recft.models.text_path)")
    text.add_argument("--item-text", choices=["none", "id+text", "text"], default="none",
                      help="the item tower also reads each item's text (id+text) or only its "
                      "text (text); default none")
    text.add_argument("--text-encoder", default="all-MiniLM-L6-v2", metavar="NAME",
                      help="all-MiniLM-L6-v2 (alias minilm, default) or tfidf")
    text.add_argument("--item-texts", metavar="FILE", help="CSV/TSV/Parquet with item_id,text "
                      "(default: texts built from the dataset's titles, genres, tags, artists)")
    add_launch_args(parser)
    parser.set_defaults(handler=_run, json_stdout=True)  # the JSON summary is all of stdout


def _run(args: argparse.Namespace) -> int:
    return dispatch(args, _run_locked, _pretrain)  # --nproc / torchrun: sharded (launch.py)


@locks_outputs("out", resume=True)  # one writer per --out and <out>.resume (rank 0's)
def _run_locked(args: argparse.Namespace) -> int:
    return _pretrain(args)


def _pretrain(args: argparse.Namespace) -> int:
    from recft.data import split as make_split
    from recft.evaluate import evaluate
    from recft.models import TwoTowerConfig
    from recft.run_record import training_record
    from recft.train import PretrainConfig, pretrain
    from recft.train.sharding import parse_sharding

    context = args.distributed
    sharding = parse_sharding(args.sharding)
    started = time.time()
    interactions = load_dataset(args)
    parts = make_split(interactions, args.split, seed=args.seed)
    model_overrides = {k: v for k, v in (("embedding_dim", args.embedding_dim),
                                         ("temperature", args.temperature)) if v is not None}
    train_overrides = {
        name: getattr(args, name)
        for name in ("epochs", "batch_size", "lr", "embedding_lr", "loss", "num_negatives", "patience")
        if getattr(args, name) is not None
    }
    model_config = TwoTowerConfig.for_data(parts.train, item_text=args.item_text,
                                           **model_overrides)
    vectors = None
    if args.item_text != "none":
        from recft.models.text_path import catalog_text_vectors

        vectors = catalog_text_vectors(interactions, args.text_encoder, args.item_texts,
                                       progress=not args.quiet)
    train_config = PretrainConfig(seed=args.seed, **train_overrides)
    out = Path(args.out)
    resume_dir = out.with_name(out.name + ".resume")
    model, history = pretrain(
        parts.train,
        model_config,
        valid=parts.valid,
        pretrain_config=train_config,
        resume_dir=resume_dir,
        progress=not args.quiet,
        item_text=vectors,
        distributed=context,
        sharding=sharding,
    )
    known = parts.known("test")  # every rank ranks the catalog for its share of test users
    metrics = evaluate(model, parts.test, exclude=known, history=known, ks=(10, 20), segments=True,
                       distributed=context)
    if context is not None and not context.is_main:
        return 0  # rank 0 writes the (gathered, portable) checkpoint
    extra = {} if context is None else {"distributed": context.record()}
    training = training_record(args.dataset, parts, metrics, config=train_config, history=history,
                               wall_time_s=round(time.time() - started, 2), **extra)
    model.save_pretrained(out, training=training)
    shutil.rmtree(resume_dir, ignore_errors=True)  # the checkpoint supersedes the resume state
    summary = {"checkpoint": str(out), "protocol": training["protocol"], "metrics": training["metrics"],
               "wall_time_s": training["wall_time_s"]}
    print_json(summary)
    return 0

