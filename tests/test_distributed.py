"""Data-parallel training: two gloo processes on the CPU train like one process with the same global batch,
checkpoints move between 2 processes and 1, gradient accumulation gives the big batch's losses, and a rank
that fails ends the others with one line instead of a hang.

The multi-process tests start their ranks with ``torch.multiprocessing`` (the spawn method: fresh
interpreters) on a free 127.0.0.1 port, or run ``torch.distributed.run`` itself in a subprocess.
"""

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

import gpt_lesson.training as train_mod
from gpt_lesson import DistContext, Model5, TrainConfig, TrainStep, make_adamw, preset, process_group, train
from gpt_lesson.cli import main
from gpt_lesson.plan import per_process_batch

TINY = preset("tiny")
# The tiny preset, 4 steps of a global batch of 4 windows of 16 tokens, test loss at 0, 2 and 4 over 3 batches
# (an odd count: rank 0 evaluates two of them, rank 1 one).
RUN = dict(steps=4, batch_size=4, seq_len=16, eval_every=2, eval_batches=3, amp=False, progress=False)
CLI_FAST = ["--preset", "tiny", "--offline", "--no-progress", "--sample-tokens", "3", "--batch-size", "4",
            "--eval-every", "2", "--eval-batches", "3"]
DEADLINE_S = 120  # a multi-process test that is not done by then has hung: its processes are killed


def build(seed: int = 0) -> Model5:
    torch.manual_seed(seed)
    return Model5(TINY)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (torch.randint(0, TINY.vocab_size, (3000,), generator=g),
            torch.randint(0, TINY.vocab_size, (800,), generator=g))


def result(model: Model5, h) -> dict:
    return {"train_loss": h.train_loss, "test_loss": h.test_loss, "eval_steps": h.eval_steps,
            "tokens_seen": h.tokens_seen, "weights": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def assert_same_run(a: dict, b: dict, rtol: float = 1e-5) -> None:
    """The same losses within the rounding of sums taken in another order. The last test loss is measured
    after the last update, so it checks the final weights too. (The weights themselves are not compared:
    a gradient that is 0 up to rounding, such as the key bias's, is normalised by AdamW into a full step
    of either sign.)"""
    assert a["eval_steps"] == b["eval_steps"] and len(a["train_loss"]) == len(b["train_loss"])
    torch.testing.assert_close(torch.tensor(a["train_loss"]), torch.tensor(b["train_loss"]), rtol=rtol, atol=0)
    torch.testing.assert_close(torch.tensor(a["test_loss"]), torch.tensor(b["test_loss"]), rtol=rtol, atol=0)


# ---- running ranks -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_rank_env(rank: int, world_size: int, port: int) -> None:
    """What torchrun gives each process."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)


def _train_worker(rank: int, world_size: int, port: int, out, job, *args) -> None:
    _set_rank_env(rank, world_size, port)
    ctx = DistContext.from_env("cpu")
    with process_group(ctx, timeout=timedelta(seconds=60)):
        res = job(ctx, *args)
    torch.save(res, out / f"result{rank}.pt")


def run_ranks(worker, out, *args, nprocs: int = 2) -> list:
    """Run ``worker(rank, nprocs, port, out, *args)`` in ``nprocs`` fresh processes; each rank's saved result."""
    ctx = mp.start_processes(worker, args=(nprocs, free_port(), out, *args), nprocs=nprocs, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + DEADLINE_S
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the ranks were still running after {DEADLINE_S} s: a hang")
    return [torch.load(out / f"result{r}.pt", weights_only=True) for r in range(nprocs)]


@pytest.fixture
def one_thread_env(monkeypatch):
    """One OpenMP thread in every spawned rank (they inherit the environment); restored after the test."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# ---- two processes give the run of one; checkpoints move between 2 processes and 1 ----------------


def _job_two_process_runs(ctx: DistContext, out) -> dict:
    """Every 2-process run the next two tests check, in one start of the ranks (starting is the slow part):
    4 steps with 2 rows per rank; with 2 micro-batches of 1 row per rank; from the 1-process checkpoint at
    step 2 to step 4; and from 0 to step 2, saving a checkpoint."""
    res = {}
    for accum in (1, 2):
        model = build()
        res[accum] = result(model, train(model, *data(), dist=ctx, grad_accum=accum, **RUN))
    model = build(seed=5)  # other weights than the checkpoint's: the resume must replace them
    res["from_one"] = result(model, train(model, *data(), dist=ctx, resume_from=out / "one.pt", **RUN))
    train(build(), *data(), dist=ctx, stop_after=2, checkpoint_path=out / f"two_rank{ctx.rank}.pt", **RUN)
    return res


@pytest.fixture(scope="module")
def one_process():
    model = build()
    return result(model, train(model, *data(), **RUN))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """(folder, [rank 0's results, rank 1's]) of `_job_two_process_runs`; one.pt is written before it."""
    out = tmp_path_factory.mktemp("ddp")
    train(build(), *data(), stop_after=2, checkpoint_path=out / "one.pt", **RUN)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("OMP_NUM_THREADS", "1")  # inherited by the spawned ranks
        return out, run_ranks(_train_worker, out, _job_two_process_runs, out)


@pytest.mark.slow
def test_two_gloo_processes_give_the_losses_of_one_process(two_processes, one_process):
    _, ranks = two_processes
    for accum in (1, 2):
        assert ranks[0][accum]["train_loss"] == ranks[1][accum]["train_loss"]  # all-reduced: the same on every rank
        assert ranks[0][accum]["test_loss"] == ranks[1][accum]["test_loss"]
        assert_same_run(ranks[0][accum], one_process)
        for k, w in ranks[0][accum]["weights"].items():  # DDP keeps the copies of the model identical
            assert torch.equal(w, ranks[1][accum]["weights"][k]), k
        assert ranks[0][accum]["tokens_seen"] == one_process["tokens_seen"]  # counted over the global batch


@pytest.mark.slow
def test_a_checkpoint_moves_between_two_processes_and_one(two_processes, one_process):
    out, ranks = two_processes
    assert_same_run(ranks[0]["from_one"], one_process)  # 1 -> 2
    assert not (out / "two_rank1.pt").exists()  # rank 0 alone writes checkpoints
    model = build(seed=5)
    h = train(model, *data(), resume_from=out / "two_rank0.pt", **RUN)
    assert_same_run(result(model, h), one_process)  # 2 -> 1


# ---- a failing rank ----------------------------------------------------------------------------


def _cli_worker(rank: int, world_size: int, port: int, out, argv: list, fail_rank: int | None) -> None:
    """``python -m gpt_lesson`` as one rank under torchrun; rank ``fail_rank`` raises at its third step."""
    import gpt_lesson.distributed as dist_mod

    _set_rank_env(rank, world_size, port)
    # Past the test's deadline: were the failure noticed only by the timeout, the test would fail as a hang.
    dist_mod.DEFAULT_TIMEOUT = timedelta(seconds=3 * DEADLINE_S)
    if rank == fail_rank:
        real, calls = TrainStep.__call__, []

        def failing(self, x, y):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("simulated failure in step 2")
            return real(self, x, y)

        TrainStep.__call__ = failing
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(argv)
    torch.save({"rc": rc, "out": stdout.getvalue(), "err": stderr.getvalue()}, out / f"result{rank}.pt")


@pytest.mark.slow
def test_a_failing_rank_ends_every_rank_with_one_line(tmp_path, one_thread_env):
    argv = [*CLI_FAST, "--steps", "6", "--out", str(tmp_path / "run")]
    ranks = run_ranks(_cli_worker, tmp_path, argv, 1)  # no hang: rank 0 notices at once that rank 1 left
    assert ranks[1]["rc"] == 1
    assert ranks[1]["err"].strip() == "error on rank 1 of 2: RuntimeError: simulated failure in step 2"
    assert ranks[0]["rc"] == 1
    err0 = ranks[0]["err"].strip().splitlines()
    assert len(err0) == 1 and err0[0].startswith("error on rank 0 of 2:"), err0
    assert ranks[1]["out"] == ""  # only rank 0 prints
    assert not tdist.is_initialized()  # the test process itself never joined a group


# ---- closing the group -------------------------------------------------------------------------


def _closing_worker(rank: int, world_size: int, port: int, out, raise_on: int | None) -> None:
    """Rank 0 takes a second longer than rank 1 to end its block; rank ``raise_on`` raises in it instead."""
    _set_rank_env(rank, world_size, port)
    ctx, outcome = DistContext.from_env("cpu"), "ended"
    try:
        with process_group(ctx, timeout=timedelta(seconds=60)):
            if rank == raise_on:
                raise RuntimeError("simulated failure")
            if rank == 0:
                time.sleep(1.0)
                (out / "rank0_done").write_text("done")
    except RuntimeError as e:
        outcome = "simulated" if "simulated" in str(e) else "lost its peer"
    torch.save({"outcome": outcome, "saw_rank0_done": (out / "rank0_done").exists(),
                "closed": not tdist.is_initialized()}, out / f"result{rank}.pt")


@pytest.mark.slow
def test_a_clean_end_waits_for_every_rank_before_the_group_closes(tmp_path, one_thread_env):
    ranks = run_ranks(_closing_worker, tmp_path, None)
    assert [r["outcome"] for r in ranks] == ["ended", "ended"]
    assert ranks[1]["saw_rank0_done"]  # rank 1 left its block first, and waited for rank 0's
    assert all(r["closed"] for r in ranks)


@pytest.mark.slow
def test_a_rank_that_raises_closes_the_group_without_waiting(tmp_path, one_thread_env):
    ranks = run_ranks(_closing_worker, tmp_path, 1)  # no hang: rank 1 does not wait at the barrier
    assert ranks[1]["outcome"] == "simulated" and not ranks[1]["saw_rank0_done"]
    assert ranks[0]["outcome"] == "lost its peer"  # its barrier fails: rank 1 is gone
    assert all(r["closed"] for r in ranks)


# ---- torchrun itself ---------------------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_runs_the_cli_like_one_process(tmp_path, capsys):
    args = [*CLI_FAST, "--steps", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "gpt_lesson", *args, "--out", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=DEADLINE_S, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("preset: tiny") == 1 and proc.stdout.count("--- after training ---") == 1
    assert "torchrun: 2 processes (gloo)" in proc.stdout and "4x32 = 2 processes x 2 rows" in proc.stdout

    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    two, one = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("two", "one"))
    assert two["world_size"] == 2 and one["world_size"] == 1
    torch.testing.assert_close(torch.tensor(two["history"]["train_loss"]), torch.tensor(one["history"]["train_loss"]),
                               rtol=1e-5, atol=0)
    torch.testing.assert_close(torch.tensor(two["history"]["test_loss"]), torch.tensor(one["history"]["test_loss"]),
                               rtol=1e-5, atol=0)


# ---- gradient accumulation (one process) -------------------------------------------------------


@pytest.mark.parametrize("grad_accum, grad_clip, fp16", [(2, None, False), (4, 0.05, False), (2, None, True)])
def test_accumulation_gives_the_losses_of_the_big_batch(grad_accum, grad_clip, fp16, monkeypatch):
    """Micro-batches with losses scaled by 1/k, one clip and one update: the run of the whole batch.
    A clip of 0.05 is active at every step, so it must see the summed gradients, not a micro-batch's."""
    if fp16:  # the T4 path: fp16 autocast and the gradient scaler, on this CPU
        monkeypatch.setattr(train_mod, "autocast_dtype", lambda device: torch.float16)
    kw = {**RUN, "amp": fp16, "grad_clip": grad_clip}
    if fp16:  # fp16 is slow on a CPU: fewer steps and test batches
        kw.update(steps=2, eval_batches=1)
    runs = {}
    for k in (1, grad_accum):
        model = build()
        runs[k] = result(model, train(model, *data(), grad_accum=k, **kw))
    assert_same_run(runs[grad_accum], runs[1], rtol=2e-3 if fp16 else 1e-5)


def test_one_step_accumulates_the_gradient_of_the_whole_batch():
    x, y = (torch.randint(0, TINY.vocab_size, (4, 16), generator=torch.Generator().manual_seed(s)) for s in (3, 4))
    grads = {}
    for k in (1, 4):
        model = build()
        step = TrainStep(model, make_adamw(model, lr=0.0, weight_decay=0.0), grad_accum=k)
        loss = step(x, y)
        grads[k] = (loss, [p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(grads[4][0], grads[1][0], rtol=1e-6, atol=0)
    for a, b in zip(grads[4][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


# ---- bad settings get one clear error ----------------------------------------------------------


def test_batches_that_do_not_split_are_refused_naming_the_fix(tmp_path, capsys, monkeypatch):
    with pytest.raises(ValueError, match=r"TrainConfig\.grad_accum must be a positive integer"):
        TrainConfig(grad_accum=0)
    with pytest.raises(ValueError, match=r"TrainConfig\.grad_accum must be a divisor of batch_size=6"):
        TrainConfig(batch_size=6, grad_accum=4)
    with pytest.raises(ValueError, match=r"2 process\(es\) x grad_accum=2 = 4 .* multiple of 4 \(e\.g\. 8\)"):
        per_process_batch(TrainConfig(batch_size=6, grad_accum=2), world_size=2)
    assert per_process_batch(TrainConfig(batch_size=8, grad_accum=2), world_size=2) == 4
    model = build()
    # TrainStep trusts its caller (a RunPlan checked the sizes above): a wrong size is a broken invariant
    step = TrainStep(model, make_adamw(model, lr=0.0, weight_decay=0.0), grad_accum=3)
    with pytest.raises(AssertionError, match="4 rows do not split into 3 micro-batches"):
        step(torch.zeros(4, 8, dtype=torch.long), torch.zeros(4, 8, dtype=torch.long))

    # In the CLI: one line and exit code 2 before any work, also for the world size torchrun would give.
    assert main([*CLI_FAST, "--grad-accum", "3", "--out", str(tmp_path / "a")]) == 2
    assert "grad_accum" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main([*CLI_FAST, "--out", str(tmp_path / "b")]) == 2
    assert "does not split over 3 process(es)" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not tdist.is_initialized()


def test_torchrun_variables_are_read_and_checked():
    one = DistContext.from_env("cpu", environ={})
    assert (one.distributed, one.rank, one.world_size, one.is_main) == (False, 0, 1, True)
    with process_group(one):
        assert not tdist.is_initialized()  # one process opens no group
    ctx = DistContext.from_env("cpu", environ={"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ctx.distributed, ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (True, 3, 4, 1, False)
    assert ctx.device == torch.device("cpu") and ctx.backend == "gloo"
    with pytest.raises(RuntimeError, match="LOCAL_RANK missing from the environment while RANK, WORLD_SIZE"):
        DistContext.from_env("cpu", environ={"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(RuntimeError, match="inconsistent torchrun variables"):
        DistContext.from_env("cpu", environ={"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    with pytest.raises(RuntimeError, match="must be integers"):
        DistContext.from_env("cpu", environ={"RANK": "x", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
