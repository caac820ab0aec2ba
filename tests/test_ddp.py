"""Two CPU processes with gloo train the tiny codec with DDP and end with identical weights."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from vqaudio.recipe import load_recipe
from vqaudio.train import read_metrics, train

from .test_train import RECIPES, tiny_overrides, write_songs


def _worker(rank: int, world_size: int, tmp: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world_size
    )
    try:
        tmp_path = Path(tmp)
        recipe = load_recipe(
            RECIPES / "tiny-codec.yaml",
            tiny_overrides(tmp_path, tmp_path / "songs", **{"train.steps": 4}),
        )
        train(recipe, tmp_path / "run", device="cpu")
        state = {k: v.contiguous() for k, v in _trained[0].state_dict().items()} if _trained else {}
        save_file(state, str(tmp_path / f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


_trained: list = []


def _keep_model(task_init):
    def init(self, *args, **kwargs):
        task_init(self, *args, **kwargs)
        _trained[:] = [self.model]

    return init


def _spawned(rank: int, world_size: int, tmp: str) -> None:
    from vqaudio.train.codec_task import CodecTask

    CodecTask.__init__ = _keep_model(CodecTask.__init__)  # to read each rank's weights afterwards
    _worker(rank, world_size, tmp)


def test_two_gloo_ranks_hold_identical_weights(tmp_path):
    write_songs(tmp_path / "songs", count=4)
    mp.spawn(_spawned, args=(2, str(tmp_path)), nprocs=2, join=True)
    rank0 = load_file(tmp_path / "rank0.safetensors")
    rank1 = load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and rank0
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    written = load_file(tmp_path / "run" / "model.safetensors")  # rank 0's file
    for name in written:
        assert torch.equal(written[name], rank0[name]), name
    # k-means init and dead-code restarts change codebooks outside the gradient all-reduce:
    # they must still agree across ranks (and must have run, or the check above is empty)
    assert all(bool(rank1[k]) for k in rank1 if k.endswith("initialized"))
    steps = [r["step"] for r in read_metrics(tmp_path / "run") if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4]  # one writer (rank 0): no duplicated lines


def _ema_worker(rank: int, world_size: int, tmp: str) -> None:
    from vqaudio.codec.quantize import VectorQuantizer

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp}/ema-rendezvous", rank=rank, world_size=world_size
    )
    try:
        torch.manual_seed(0)
        vq = VectorQuantizer(4, 16, ema_decay=0.9).train()
        batch = torch.load(Path(tmp) / "batch.pt", weights_only=True)
        for _ in range(3):
            vq(batch.chunk(world_size)[rank])  # each rank sees its half of the batch
        save_file(
            {k: v.contiguous() for k, v in vq.state_dict().items()},
            str(Path(tmp) / f"ema{rank}.safetensors"),
        )
    finally:
        dist.destroy_process_group()


def test_ema_codebooks_under_ddp_equal_one_process_on_the_whole_batch(tmp_path):
    """EMA statistics are all-reduced: two ranks on halves = one process on the concatenation
    (before, each rank kept the EMA of its own half and rank 0's was broadcast)."""
    from vqaudio.codec.quantize import VectorQuantizer

    torch.manual_seed(1)
    batch = torch.randn(4, 4, 32) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1)
    torch.save(batch, tmp_path / "batch.pt")
    mp.spawn(_ema_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    alone = VectorQuantizer(4, 16, ema_decay=0.9).train()
    for _ in range(3):
        alone(batch)
    rank0 = load_file(tmp_path / "ema0.safetensors")
    rank1 = load_file(tmp_path / "ema1.safetensors")
    for name in ("codebook", "ema_sum", "ema_count", "usage_ema"):
        torch.testing.assert_close(rank0[name], alone.state_dict()[name], msg=name)
        torch.testing.assert_close(rank1[name], rank0[name], msg=name)


_discriminators: list = []


def _keep_discriminator(task_init):
    def init(self, *args, **kwargs):
        task_init(self, *args, **kwargs)
        _discriminators[:] = [self.discriminator]

    return init


def _adversarial_worker(rank: int, world_size: int, tmp: str) -> None:
    from vqaudio.train.codec_task import CodecTask

    CodecTask.__init__ = _keep_discriminator(CodecTask.__init__)
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp}/gan-rendezvous", rank=rank, world_size=world_size
    )
    try:
        tmp_path = Path(tmp)
        extra = {
            "codec.kmeans_init": "false",
            "train.steps": 3,
            "data.val_files": 0,  # no evaluation: this test is about the training steps
            "train.checkpoint_every": 100,
            "adversarial.enabled": "true",
            "adversarial.window_lengths": "[256,128]",
            "adversarial.channels": 4,
        }
        recipe = load_recipe(
            RECIPES / "tiny-codec.yaml", tiny_overrides(tmp_path, tmp_path / "songs", **extra)
        )
        train(recipe, tmp_path / "run", device="cpu")
        state = {k: v.contiguous() for k, v in _discriminators[0].state_dict().items()}
        save_file(state, str(tmp_path / f"disc{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def test_adversarial_discriminators_stay_equal_across_ranks(tmp_path):
    """Each rank judges its own batch; the discriminator's gradients are averaged, so the
    ranks keep one discriminator (before, each learnt from its own batches and they drifted)."""
    write_songs(tmp_path / "songs", count=4)
    mp.spawn(_adversarial_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    rank0 = load_file(tmp_path / "disc0.safetensors")
    rank1 = load_file(tmp_path / "disc1.safetensors")
    assert rank0.keys() == rank1.keys() and rank0
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
