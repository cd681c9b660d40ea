"""Every recipe is a typed config that builds at its real shape (on the meta device, no memory)
with the parameter count it promises; the paper recipe carries the paper's numbers."""

from __future__ import annotations

import math

import pytest
import torch

from mind_nemo.pretrain import base as base_lib
from mind_nemo.pretrain import model as model_lib
from mind_nemo.pretrain.config import RecipeConfig
from tests.helpers import REPO
from tests.pretrain.helpers import recipe

pytest_plugins = ("tests.pretrain.helpers",)  # fixtures: megatron_runtime

RECIPES = sorted(p.stem for p in (REPO / "hydra_configs/pretrain").glob("*"))


def test_the_four_recipes_are_there():
    assert RECIPES == ["llama3_8b", "mind_7b", "smollm2_135m", "tiny_cpu"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds_at_its_real_shape_with_the_expected_parameter_count(name, megatron_runtime):
    cfg = recipe(name, "base_checkpoint=null")
    r = cfg.pretrain
    assert isinstance(r, RecipeConfig) and r.name == name
    assert r.expected_params > 0
    whole = base_lib.single_process_recipe(r)  # the same weights, one process holds them
    with torch.device("meta"):
        model = model_lib.build_model(whole, on_gpu=False, init=False)
    assert all(p.device.type == "meta" for p in model.parameters())
    padded = model.embedding.word_embeddings.weight.shape[0]
    assert (
        padded % (r.model.make_vocab_size_divisible_by * r.parallel.tensor_model_parallel_size) == 0
    )
    counted = model_lib.count_parameters(model)
    assert counted == r.expected_params
    assert counted == model_lib.formula_parameters(r.model, padded)
    layer = model.decoder.layers[0]
    head_dim = r.model.hidden_size // r.model.num_attention_heads
    qkv_rows = head_dim * (r.model.num_attention_heads + 2 * r.model.num_query_groups)
    assert layer.self_attention.linear_qkv.weight.shape == (qkv_rows, r.model.hidden_size)
    assert layer.mlp.linear_fc1.weight.shape == (2 * r.model.ffn_hidden_size, r.model.hidden_size)
    assert (model.output_layer.weight is None) == r.model.tie_embeddings
    assert r.iterations() > 0


def test_mind_7b_is_the_papers_setup():
    r = recipe("mind_7b", "base_checkpoint=null").pretrain
    m, o, p = r.model, r.optimizer, r.parallel
    assert (m.num_layers, m.hidden_size, m.num_attention_heads) == (32, 4096, 32)
    assert m.num_query_groups < m.num_attention_heads  # GQA
    assert not m.add_bias_linear and not m.tie_embeddings and r.seq_length == 4096
    assert (o.adam_beta1, o.adam_beta2, o.weight_decay, o.lr, o.min_lr) == (
        0.9, 0.95, 0.1, 3e-4, 3e-6,
    )  # fmt: skip
    tokens_per_step = r.global_batch_size * r.seq_length
    assert 5.5e6 < tokens_per_step < 6.5e6  # ~6M-token batches
    assert r.train_tokens == 50e9
    assert r.iterations() == math.ceil(50e9 / tokens_per_step)
    assert (p.tensor_model_parallel_size, p.pipeline_model_parallel_size) == (2, 2)
    assert p.precision == "bf16" and p.use_distributed_optimizer
    assert 6.5e9 < r.expected_params < 7.5e9


def test_smollm2_recipe_matches_the_embedded_model_config():
    from mind_nemo.pretrain import hf_convert

    r = recipe("smollm2_135m").pretrain
    assert r.base_checkpoint == "embedded" and r.model.tie_embeddings
    hf_convert.check_shape_matches(r.model, base_lib.resolve("embedded").path)


def test_flops_formula_is_six_n_plus_attention():
    r = recipe("mind_7b", "base_checkpoint=null").pretrain
    per_token = model_lib.flops_per_token(r.model, r.seq_length)
    non_embedding = r.expected_params - 2 * 131072 * 4096 - 32 * 2 * 4096 - 4096
    expected = 6 * (non_embedding + 131072 * 4096) + 12 * 32 * 4096 * 4096
    assert per_token == pytest.approx(expected, rel=1e-9)
