"""Device choice: MPS refused, one GPU per torchrun rank, encoding free of TF32."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from typer.testing import CliRunner

from vqaudio.codec import model as codec_model
from vqaudio.errors import VqaudioError
from vqaudio.train import distributed
from vqaudio_cli.console import pick_device
from vqaudio_cli.main import app

from .conftest import diverse_codec


def test_mps_is_refused_even_where_it_is_present(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    with pytest.raises(VqaudioError, match="not supported"):
        pick_device("mps")


@pytest.mark.parametrize("command", [["train", "--resume", "nowhere"], ["compress", "x.wav"]])
def test_mps_on_the_command_line_is_one_line_and_exit_1(command):
    r = CliRunner().invoke(app, [*command, "--device", "mps"])
    assert r.exit_code == 1, r.output
    assert r.stderr.strip() == "error: --device mps: Apple GPUs are not supported; use --device cpu"


def test_help_texts_offer_no_mps():
    for command in ("compress", "decompress", "eval", "train", "generate"):
        r = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0, r.output
        assert "mps" not in r.output, command


@pytest.mark.parametrize(
    ("device", "local_rank", "world_size", "expected"),
    [
        ("cuda", 1, 2, "cuda:1"),
        ("cuda:0", 3, 4, "cuda:3"),  # an explicit index does not put every rank on GPU 0
        ("cuda:1", 0, 1, "cuda:1"),  # a single process keeps what it was given
        ("cpu", 1, 2, "cpu"),
    ],
)
def test_each_rank_drives_its_local_rank_gpu(device, local_rank, world_size, expected):
    assert distributed.rank_device(device, local_rank, world_size) == expected


def test_the_gpu_is_chosen_before_the_process_group_starts(monkeypatch):
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda b: calls.append(("init", b)))
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    world = distributed.setup("cuda:0")
    assert calls == [("set_device", "cuda:1"), ("init", "nccl")]
    assert (world.rank, world.size, world.local_rank) == (1, 2, 1)


def _flags() -> tuple:
    cudnn = torch.backends.cudnn
    return (torch.backends.cuda.matmul.allow_tf32, cudnn.allow_tf32, cudnn.deterministic)


def test_encode_runs_without_tf32_and_restores_the_callers_flags(monkeypatch):
    codec = diverse_codec()
    seen = []
    quantizer_encode = codec.quantizer.encode

    def spy(*args, **kwargs):
        seen.append(_flags())
        return quantizer_encode(*args, **kwargs)

    monkeypatch.setattr(codec.quantizer, "encode", spy)
    cudnn = torch.backends.cudnn
    saved = (torch.get_float32_matmul_precision(), cudnn.allow_tf32, cudnn.deterministic)
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        cudnn.allow_tf32, cudnn.deterministic = True, False
        codec.encode(torch.zeros(1, 1, 4000))
        assert seen == [(False, False, True)]
        assert _flags() == (True, True, False)
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(saved[0])
        cudnn.allow_tf32, cudnn.deterministic = saved[1:]


def test_exact_math_restores_the_flags_after_an_error():
    before = (*_flags(), torch.get_float32_matmul_precision())
    with pytest.raises(RuntimeError), codec_model.exact_math():
        raise RuntimeError
    assert (*_flags(), torch.get_float32_matmul_precision()) == before


def test_training_steps_between_logs_do_not_wait_for_the_device(tmp_path, monkeypatch):
    """vqaudio makes no Tensor -> Python read (float, bool, item, ...: each waits for a GPU)
    between two log lines; the loss, its finiteness and the codebook usage are read at log
    time. (Reads inside C++ ops, such as nonzero, are out of this test's sight.)"""
    from vqaudio.recipe import load_recipe
    from vqaudio.train import read_metrics, train

    from .test_train import RECIPES, tiny_overrides, write_songs

    extra = {"train.steps": 6, "train.log_every": 3, "train.checkpoint_every": 100}
    extra |= {"data.val_files": 0, "train.eval_every": 0, "optim.grad_clip": 1.0}
    recipe = load_recipe(
        RECIPES / "tiny-codec.yaml", tiny_overrides(tmp_path, write_songs(tmp_path / "s"), **extra)
    )
    reads: list[tuple] = []
    state = {"step": 0}
    for name in ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__"):
        method = getattr(torch.Tensor, name)

        def counted(self, *args, _method=method, **kwargs):
            caller = sys._getframe(1).f_code
            if f"{os.sep}vqaudio{os.sep}" in caller.co_filename:  # torch's own CPU reads aside
                reads.append((state["step"], caller.co_filename, caller.co_name))
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def on_progress(step: int, total: int, metrics: dict) -> None:
        state["step"] = step  # reads from here on belong to the end of this step or the next
        assert ("loss" in metrics) == (step > 3)  # the last log interval's figures

    train(recipe, tmp_path / "run", on_progress=on_progress)
    # step 1 seeds the codebooks; step 3 logs; steps 4 and 5 only train
    assert [r for r in reads if r[0] in (1, 4)] == []
    assert any(r[0] == 3 for r in reads)  # the counting works: the log reads the figures
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [3, 6] and all(isinstance(r["loss"], float) for r in rows)
