"""Every recipe in recipes/ loads; typos, wrong types and --set overrides behave."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from vqaudio.config import CodecConfig
from vqaudio.errors import ConfigError
from vqaudio.recipe import Recipe, load_recipe, recipe_from_dict, recipe_to_yaml

RECIPES = sorted((Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml"))


def test_the_expected_recipes_exist():
    names = {p.stem for p in RECIPES}
    assert {
        "tiny-codec",
        "tiny-prior",
        "music-24k-codec",
        "music-24k-prior",
        "example-my-songs",
    } <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads_and_round_trips(path, tmp_path):
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe) and recipe.name
    if recipe.stage == "codec":
        assert isinstance(recipe.codec, CodecConfig)
    else:
        assert isinstance(recipe.codec, str) and recipe.codec.endswith(".safetensors")
        assert recipe.prior.num_levels >= 1
    copy = tmp_path / "recipe.yaml"
    copy.write_text(recipe_to_yaml(recipe))
    assert load_recipe(copy) == recipe  # the run folder's copy rebuilds the same recipe


@pytest.mark.parametrize("name", ["music-24k-prior.yaml", "music-24k-prior-flat.yaml"])
def test_music_prior_models_the_first_five_levels_of_the_shipped_codec(name):
    codec = load_recipe(Path(RECIPES[0]).parent / "music-24k-codec.yaml")
    prior = load_recipe(Path(RECIPES[0]).parent / name)
    # the shipped codec's codes (they never change under a shipped prior)
    assert prior.codec == "vqaudio/models/codec.safetensors"
    assert codec.codec.bitrates[prior.prior.num_levels - 1] == 1500
    # the prior trains on (a subset of) the codec's music
    assert os.path.dirname(prior.data.path) == os.path.dirname(codec.data.path)


def test_misspelled_nested_key_names_itself_and_the_file():
    with pytest.raises(ConfigError) as e:
        recipe_from_dict({"codec": {"codebok_size": 8}}, "x.yaml")
    assert (
        str(e.value) == "x.yaml: codec: unknown key 'codebok_size' (did you mean 'codebook_size'?)"
    )


def test_overrides_are_parsed_as_yaml_scalars():
    recipe = recipe_from_dict(
        {"train": {"steps": 10}},
        "x.yaml",
        [
            "train.steps=500",
            "codec.level_strides=[2, 1]",
            "codec.kmeans_init=true",
            "data.path=/music",
        ],
    )
    assert recipe.train.steps == 500 and recipe.codec.level_strides == (2, 1)
    assert recipe.codec.kmeans_init is True and recipe.data.path == "/music"


@pytest.mark.parametrize(
    "raw, sets, message",
    [
        ({}, ["train.stepz=5"], "unknown key 'stepz' (did you mean 'steps'?)"),
        ({}, ["steps"], "expected KEY=VALUE"),
        ({"stage": "prior"}, [], "names its codec model file"),
        (
            {"stage": "prior", "codec": "c.safetensors", "prior": {"codebook_size": 64}},
            [],
            "prior.codebook_size is copied from the codec model file",
        ),
        ({"precision": "fp8"}, [], "precision must be fp32 or bf16"),
        ({"train": {"batch_size": 0}}, [], "train.batch_size must be >= 1"),
    ],
)
def test_bad_recipes_raise_config_error(raw, sets, message):
    with pytest.raises(ConfigError, match=None) as e:
        recipe_from_dict(raw, "x.yaml", sets)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_prior_recipe_sets_only_num_levels():
    recipe = recipe_from_dict(
        {"stage": "prior", "codec": "c.safetensors", "prior": {"num_levels": 3}}, "x.yaml"
    )
    assert recipe.prior.num_levels == 3 and len(recipe.prior.level_strides) == 3


def test_exponent_floats_read_as_numbers(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  lr: 3e-4\n  min_lr: 1.0e-6\n")
    recipe = load_recipe(path, ["optim.weight_decay=1e-2"])
    assert (recipe.optim.lr, recipe.optim.min_lr, recipe.optim.weight_decay) == (3e-4, 1e-6, 1e-2)


def test_decoder_recipe_freezes_the_music_codec_it_starts_from():
    folder = Path(RECIPES[0]).parent
    codec = load_recipe(folder / "music-24k-codec.yaml")
    decoder = load_recipe(folder / "music-24k-decoder.yaml")
    assert decoder.init_from == f"runs/{codec.name}/model.safetensors"
    assert set(decoder.train.freeze) == {"encoder", "quantizer"}
    assert decoder.codec == codec.codec  # the frozen parts fit, and the decoder can start from it
    assert decoder.data.path == codec.data.path and decoder.data.val_files == codec.data.val_files


def test_sharp_decoder_recipe_retrains_only_the_shipped_decoder():
    from vqaudio.checkpoint import DEFAULT_CODEC
    from vqaudio.codec.io import load_codec

    folder = Path(RECIPES[0]).parent
    recipe = load_recipe(folder / "music-24k-decoder-sharp.yaml")
    assert (folder.parent / recipe.init_from).resolve() == Path(DEFAULT_CODEC).resolve()
    assert set(recipe.train.freeze) == {"encoder", "quantizer"}  # the codes do not change
    shipped = load_codec(DEFAULT_CODEC)
    # every part fits, so the decoder starts from its weights; only how training picks the level
    # prefix to decode (quantizer dropout and bypass, no weights) may differ from the shipped run
    training_only = {"quantizer_dropout": 1.0, "quantizer_bypass": 0.0}
    assert dataclasses.replace(recipe.codec, **training_only) == dataclasses.replace(
        shipped.config, **training_only
    )
    assert recipe.codec.quantizer_dropout == 1.0  # every item decodes a prefix of 1-14 levels
    assert [recipe.codec.bitrates[k - 1] for k in recipe.eval.levels] == [1500, 3000, 6000]
    assert recipe.loss.level > 0 and recipe.adversarial.enabled
    assert 0 < recipe.adversarial.start_step < recipe.train.steps
    assert max(recipe.adversarial.bands_hz) < recipe.codec.sample_rate / 2
