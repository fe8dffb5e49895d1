"""Data-parallel training: 2 CPU processes under torchrun (gloo) on real PartNet clouds.

The test launches this file as the torchrun worker (`python -m torch.distributed.run ... this_file`);
each rank trains a tiny model, then dumps what it saw and a digest of its weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pointsam.data.converters import partnet_object
from pointsam.data.dataset import DatasetWriter, PointCloudDataset
from pointsam.train.config import TrainConfig
from pointsam.train.loop import CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE, Trainer

from conftest import TINY_CONFIG_KW

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PARTNET = DATA / "partnet_mobility"
OBJECTS = ["Faucet/1280", "Bottle/3558", "Bottle/3574", "Table/26608", "Bottle/3614"]
ROOT = Path(__file__).resolve().parents[1]


def partnet_dataset(root: Path) -> Path:
    """A pointsam dataset of a few real PartNet objects (skip when the shared data is absent)."""
    if not PARTNET.is_dir():
        pytest.skip(f"shared data not found: {PARTNET} (expected ../shared/data beside the repo)")
    with DatasetWriter(root, name="pm") as writer:
        for obj in OBJECTS:
            writer.add(partnet_object(PARTNET / obj, category=obj.split("/")[0]))
    return root


def config(out_dir: Path, **kw) -> TrainConfig:
    base = dict(model_overrides=dict(TINY_CONFIG_KW), num_points=512, prompt_iters=2, batch_size=1,
                grad_accum=2, lr=1e-3, weight_decay=0.1, warmup_steps=0, milestones=[1000], max_steps=2,
                log_every=1, ckpt_every=100, seed=3, tensorboard=False, out_dir=str(out_dir))
    base.update(kw)
    return TrainConfig(**base)


def digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def recording(trainer: Trainer) -> list[str]:
    """Record the names of the clouds `trainer` draws from now on."""
    names: list[str] = []
    draw = trainer._next_cloud

    def wrapped():
        cloud, perturb = draw()
        names.append(cloud.name)
        return cloud, perturb

    trainer._next_cloud = wrapped
    return names


def _worker(data: str, out: str) -> None:
    """One torchrun rank: 1 step, checkpoint at 2, a 3rd step; then resume a new trainer from step 2."""
    from pointsam.train.distributed import init_distributed, shutdown_distributed

    info, device = init_distributed("cpu")
    dataset = PointCloudDataset(data)
    cfg = config(Path(out) / "run")
    trainer = Trainer(None, dataset, cfg, device)
    names = recording(trainer)
    init = digest(trainer.model)
    history = trainer.fit(max_steps=1)
    if info.is_main:
        torch.save(trainer.model.state_dict(), Path(out) / "step1.pt")
    history += trainer.fit(max_steps=2)  # checkpoint at step 2
    third = trainer.train_one_step()
    resumed = Trainer(None, dataset, cfg, device)
    resumed.resume()
    again = resumed.train_one_step()
    result = dict(rank=info.rank, world=info.world_size, init=init, final=digest(trainer.model),
                  resumed=digest(resumed.model), names=names, history=history, third=third, again=again)
    (Path(out) / f"rank{info.rank}.json").write_text(json.dumps(result))
    shutdown_distributed()


def torchrun(args: list[str], tmp: Path, procs: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
           "--standalone", *args]
    res = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.mark.slow
def test_two_cpu_ranks_stay_in_sync_and_match_the_large_batch_step(tmp_path):
    data = partnet_dataset(tmp_path / "pm")
    torchrun([str(Path(__file__).resolve()), str(data), str(tmp_path)], tmp_path)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    # Same initial weights, different clouds, identical weights after every step.
    assert r0["init"] == r1["init"]
    assert r0["names"] != r1["names"]
    assert r0["final"] == r1["final"] != r0["init"]
    untimed = [[{k: v for k, v in m.items() if k != "time_s"} for m in r["history"]] for r in (r0, r1)]
    assert untimed[0] == untimed[1]  # metrics are means over the ranks
    # Exact resume under DDP: a new trainer from the step-2 checkpoint redoes step 3 identically.
    assert r0["resumed"] == r0["final"] and r1["resumed"] == r1["final"]
    assert r0["again"]["loss"] == pytest.approx(r0["third"]["loss"], abs=1e-6)
    # Only rank 0 wrote the run folder, once per step.
    run = tmp_path / "run"
    steps = [json.loads(line)["step"] for line in (run / METRICS_FILE).read_text().splitlines()]
    assert steps == [1, 2]
    assert (run / MODEL_FILE).is_file()
    state = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    assert state["world_size"] == 2 and len(state["rank_states"]) == 2
    assert state["rank_states"][0]["numpy_rng"] != state["rank_states"][1]["numpy_rng"]

    # The DDP step is the large-batch step: average the gradients of the two ranks' micro-batches
    # (rank r draws with seed + r) in one process and take the same AdamW step.
    dataset = PointCloudDataset(data)
    cfg = config(tmp_path / "single")
    a, b = Trainer(None, dataset, cfg), Trainer(None, dataset, cfg)
    a_names = recording(a)
    b.rng.bit_generator.state = np.random.default_rng(cfg.seed + 1).bit_generator.state
    assert digest(a.model) == r0["init"]  # the single-process path initialises as rank 0
    for t in (a, b):
        t.model.train()
        for _ in range(cfg.grad_accum):
            batch = t.next_batch()
            (t._rollout(batch.coords, batch.features, batch.gt)[0] / cfg.grad_accum).backward()
    assert a_names == r0["names"][: cfg.grad_accum]  # rank 0 draws exactly what a single process draws
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        if pa.grad is not None:
            pa.grad = (pa.grad + pb.grad) / 2
    torch.nn.utils.clip_grad_value_(a.model.parameters(), cfg.clip_value)
    a.optimizer.step()
    ddp = torch.load(tmp_path / "step1.pt", weights_only=True)
    for key, value in a.model.state_dict().items():
        assert torch.allclose(value, ddp[key], atol=1e-6), key


@pytest.mark.slow
def test_pointsam_train_under_torchrun(tmp_path):
    data = partnet_dataset(tmp_path / "pm")
    cfg = config(tmp_path / "unused", grad_accum=1, tensorboard=True).to_dict()
    del cfg["out_dir"]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    args = ["-m", "pointsam", "train", "cfg.json", "--data", str(data), "--out-dir", "run", "--device", "cpu"]
    res = torchrun(args, tmp_path)
    assert "2 processes" in res.stderr and res.stdout.count("trained to step 2") == 1  # rank 0 reports
    res = torchrun([*args, "--resume", "--max-steps", "3"], tmp_path)
    assert "resumed run at step 2" in res.stderr
    run = tmp_path / "run"
    steps = [json.loads(line)["step"] for line in (run / METRICS_FILE).read_text().splitlines()]
    assert steps == [1, 2, 3]
    state = torch.load(run / CHECKPOINT_FILE, weights_only=True)
    assert state["step"] == 3 and state["world_size"] == 2
    assert any((run / "tensorboard").iterdir())


if __name__ == "__main__":
    _worker(*sys.argv[1:3])


# ----------------------------------------------------------------------------- the one reader of the env


def test_launch_env_reads_torchrun_variables(monkeypatch):
    from pointsam.errors import InputError
    from pointsam.utils.distributed import ENV_VARS, DistInfo, launch_env

    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert launch_env() == DistInfo(0, 0, 1) and launch_env().is_main and not launch_env().distributed
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    info = launch_env()
    assert info == DistInfo(2, 0, 3) and info.distributed and not info.is_main
    monkeypatch.setenv("RANK", "3")
    with pytest.raises(InputError, match="RANK < WORLD_SIZE"):
        launch_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(InputError, match="RANK='x' is not an integer"):
        launch_env()


def test_single_process_without_torchrun(monkeypatch):
    from pointsam.train.distributed import dist_info, init_distributed
    from pointsam.utils.distributed import ENV_VARS

    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    info, device = init_distributed("cpu")
    assert info == dist_info() and not info.distributed and device == torch.device("cpu")
