"""``--nproc N``: run a command as N local processes with torchrun's launcher, and the
worker side of any torchrun job (``torchrun --nproc-per-node N -m recft pretrain ...``).

The launcher is torch's own (``torch.distributed.launcher.api.elastic_launch``, what
``torchrun`` runs): a c10d rendezvous on 127.0.0.1, one worker per rank running the same
command line, and when one worker fails the others are stopped. Rank 0 keeps this
terminal (progress, the JSON result, its errors); the other ranks' output goes to log
files. Every failure ends in one line: a rank's own recft error, or, for a rank that died
without one (killed, crashed), which rank died and how; ranks that only lost contact
with the dead one stay silent.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import signal
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from recft.errors import RecftError, TrainingError
from recft.process_env import restored_environment

Handler = Callable[[argparse.Namespace], int]
_SKIPPED = {"help", "nproc", "port", "config", "launch_parser", "handler", "json_stdout"}
_STOP_SECONDS = 10  # a stopped rank gets this long to exit before it is killed
_ERRORS_ENV = "RECFT_RANK_ERRORS"  # folder where --nproc workers leave their error line
_PEER_LOST = "lost contact with another rank"


class LaunchError(RecftError):
    """The processes cannot be started as asked (cores, port, flags)."""


class RankFailedError(TrainingError):
    """A rank of the job failed; the others were stopped."""


def add_launch_args(parser: argparse.ArgumentParser, *, tables: bool = True) -> None:
    """``--nproc`` and ``--port`` on a command that can run sharded, and ``--sharding``
    where its model's tables are sharded (``tables``; evaluation and batch recommendation
    split the users over the processes instead, each holding the whole model)."""
    title = ("scale-out (torchrec DistributedModelParallel; see README 'Scale-out')" if tables
             else "scale-out: users split over processes (see README 'Scale-out')")
    group = parser.add_argument_group(title)
    group.add_argument("--nproc", type=int, metavar="N",
                       help="run as N processes on this machine, tables sharded by torchrec's "
                       "DMP over gloo (at most one per core); under torchrun, leave it out"
                       if tables else "run as N processes on this machine (at most one per "
                       "core), each ranking its share of the users against the whole "
                       "catalog; under torchrun, leave it out")
    group.add_argument("--port", type=int, metavar="P",
                       help="rendezvous port on 127.0.0.1 for --nproc (default: a free one)")
    if tables:
        group.add_argument("--sharding", metavar="TABLE=TYPE,...",
                           help="per-table sharding, TYPE one of table_wise, row_wise, "
                           "column_wise, data_parallel (e.g. item_id=row_wise,user_id="
                           "table_wise); tables not named are placed by torchrec's planner")
    parser.set_defaults(launch_parser=parser)


def dispatch(args: argparse.Namespace, locked: Handler, unlocked: Handler) -> int:
    """Run the command: launch ``--nproc`` workers, act as one torchrun worker, or run
    plainly. ``locked`` holds the output locks (rank 0 or a single process); the other
    ranks run ``unlocked``. Either finds ``args.distributed`` (None or the rank's
    ``recft.train.distributed.Distributed``)."""
    from recft.train.distributed import launched_by_torchrun

    if launched_by_torchrun():
        return _run_worker(args, locked, unlocked)
    if args.nproc is not None and args.nproc < 1:
        raise LaunchError(f"--nproc must be >= 1, got {args.nproc}")
    if (args.nproc or 1) > 1:
        return launch(args, args.nproc)
    if getattr(args, "sharding", None):
        raise LaunchError("--sharding applies to sharded runs: add --nproc N (N >= 2) or "
                          "start the command with torchrun")
    args.distributed = None
    return locked(args)


# ---------------------------------------------------------------------------- worker side
def _run_worker(args: argparse.Namespace, locked: Handler, unlocked: Handler) -> int:
    import torch

    from recft.train.distributed import Distributed, threads_per_rank

    world = int(os.environ["WORLD_SIZE"])
    if args.nproc not in (None, world):
        raise LaunchError(f"--nproc {args.nproc} under torchrun, whose job has {world} "
                          "processes: leave --nproc out (torchrun starts the processes)")
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    _check_cores(local, "this torchrun job starts")
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads_per_rank(local))
    context = Distributed.from_environment()
    args.distributed = context
    try:
        return (locked if context.is_main else unlocked)(args)
    except RecftError as error:
        tagged = error if context.is_main else _on_rank(error, context.rank, context.world_size)
        _leave_error(context.rank, f"recft: error: {' '.join(str(tagged).split())}")
        raise tagged from None
    except Exception as error:
        if not _peer_lost(error):
            raise
        # the rank that died is the news; under --nproc the launcher reports it
        _leave_error(context.rank, _PEER_LOST)
        if os.environ.get(_ERRORS_ENV):
            raise SystemExit(1) from None
        from recft.train.distributed import DistributedError

        raise DistributedError(f"rank {context.rank} of {context.world_size}: {_PEER_LOST} "
                               f"(it died or was stopped): {str(error).splitlines()[0][:160]}"
                               ) from None
    finally:
        context.close()


def _peer_lost(error: BaseException) -> bool:
    """A collective failed because another rank went away."""
    import torch.distributed as dist

    text = str(error)
    return isinstance(error, getattr(dist, "DistError", ())) or any(
        sign in text for sign in ("Connection closed by peer", "Connection reset by peer",
                                  "Broken pipe", "Connection refused"))


def _leave_error(rank: int, line: str) -> None:
    folder = os.environ.get(_ERRORS_ENV)
    if folder:
        (Path(folder) / f"rank{rank}.txt").write_text(line + "\n")


def _on_rank(error: RecftError, rank: int, world: int) -> RecftError:
    """``error`` with its message saying which rank raised it."""
    tagged = copy.copy(error)
    tagged.args = (f"rank {rank} of {world}: {error}", *error.args[1:])
    return tagged


# ---------------------------------------------------------------------------- launcher side
def launch(args: argparse.Namespace, nproc: int) -> int:
    """Start ``nproc`` workers running this command; return rank 0's exit code.

    Raises:
        LaunchError: more processes than cores, or ``--port`` in use.
        RankFailedError: a rank failed before printing a recft error.
    """
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from recft.train.distributed import threads_per_rank

    _check_cores(nproc, f"--nproc {nproc} asks for")
    port = _free_port() if args.port is None else _check_port(args.port)
    logs = Path(tempfile.mkdtemp(prefix="recft-ranks-"))
    errors = logs / "errors"
    errors.mkdir()
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"recft-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{port}", max_restarts=0,
        monitor_interval=0.2, start_method="spawn", shutdown_timeout=_STOP_SECONDS,
        logs_specs=DefaultLogsSpecs(log_dir=str(logs),
                                    redirects={r: Std.ALL for r in range(1, nproc)}))
    threads = os.environ.get("OMP_NUM_THREADS") or str(threads_per_rank(nproc))
    command = ["-m", "recft", *worker_argv(args)]
    local = {"GLOO_SOCKET_IFNAME": "lo"} if sys.platform.startswith("linux") else {}
    with _quiet_launcher(), _environment(OMP_NUM_THREADS=threads, **local,
                                         **{_ERRORS_ENV: str(errors)}):
        try:
            elastic_launch(config, sys.executable)(*command)
        except ChildFailedError as failure:
            return _report_failure(failure, nproc, logs, getattr(args, "out", None))
        except Exception as error:  # torchelastic's SignalException on Ctrl-C / SIGTERM
            if type(error).__name__ == "SignalException":
                raise KeyboardInterrupt from None
            raise
    return 0


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The command line a worker runs: this one, as parsed (config files expanded), less
    the launcher's own flags."""
    parser: argparse.ArgumentParser = args.launch_parser
    argv = [parser.prog.split()[-1]]
    for action in parser._actions:
        if action.dest in _SKIPPED or not action.option_strings:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == action.default or value is False:
            continue
        flag = max(action.option_strings, key=len)
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag, *(str(v) for v in value)]
        else:
            argv += [flag, str(value)]
    return argv


def _report_failure(failure, nproc: int, logs: Path, out: str | None) -> int:
    """One line for a failed job: the first rank's own recft error (rank 0's is on the
    terminal already), else which rank died and how."""
    failed = dict(sorted(failure.failures.items()))
    messages = {rank: (logs / "errors" / f"rank{rank}.txt").read_text().strip()
                for rank in failed if (logs / "errors" / f"rank{rank}.txt").is_file()}
    reported = {r: m for r, m in messages.items() if m != _PEER_LOST}
    if reported:
        rank, line = next(iter(reported.items()))
        code = failed[rank].exitcode
        if rank != 0:
            print(line, file=sys.stderr)
        return code if code in (1, 2) else 1
    dead = [r for r in failed if r not in messages] or list(failed)
    rank = dead[0]
    code = failed[rank].exitcode
    how = (f"signal {signal.Signals(-code).name}" if code is not None and code < 0
           and -code in signal.Signals._value2member_map_ else f"exit code {code}")
    written = f"; nothing was written to {out}" if out else ""
    raise RankFailedError(f"rank {rank} of {nproc} died ({how}); the other ranks were "
                          f"stopped{written} (its log: {_rank_log(logs, rank) or 'none'})")


def _rank_log(logs: Path, rank: int) -> Path | None:
    found = sorted(logs.glob(f"**/attempt_*/{rank}/stderr.log"))
    return found[-1] if found else None


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _check_cores(processes: int, what: str) -> None:
    cores = _available_cores()
    if processes > cores:
        raise LaunchError(f"{what} {processes} processes, more than the {cores} cores this "
                          f"machine lets it use; use at most --nproc {cores}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise LaunchError(f"--port must be in 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise LaunchError(f"--port {port}: 127.0.0.1:{port} is in use (another run?); pick "
                              "another port or leave --port out for a free one") from None
    return port


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Variables the workers inherit (set only where unset), restored afterwards."""
    with restored_environment(values):
        for key, value in values.items():
            os.environ.setdefault(key, value)
        yield


@contextlib.contextmanager
def _quiet_launcher() -> Iterator[None]:
    """torchelastic logs every start and failure at INFO/ERROR with a full table; recft
    reports a failure in one line itself (``--verbose`` shows torch's messages again)."""
    logger = logging.getLogger("torch.distributed.elastic")
    level = logger.level
    if logging.getLogger().level > logging.DEBUG:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


__all__ = ["LaunchError", "RankFailedError", "add_launch_args", "dispatch", "launch",
           "worker_argv"]
