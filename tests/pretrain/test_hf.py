"""Hugging Face <-> megatron-core conversion: the embedded SmolLM2 gives the same next-token
logits in both, conversions round-trip exactly (tied and untied, GQA), the export loads with
``AutoModelForCausalLM`` and matches, and continued pretraining starts from the real model."""

from __future__ import annotations

import json

import pytest
import torch

from mind_nemo.pretrain import base as base_lib
from mind_nemo.pretrain import hf_convert
from mind_nemo.pretrain import model as model_lib
from mind_nemo.pretrain.export import export_model
from tests.helpers import run_stage
from tests.pretrain.helpers import read_rows, recipe

pytest_plugins = ("tests.pretrain.helpers",)  # fixtures: megatron_runtime, mix_dir

TEXT = "The derivative of x^2 is 2x, so the slope of the parabola at x = 3 is 6."


@pytest.fixture(scope="module")
def embedded():
    return base_lib.resolve("embedded")


def _logits(model, ids):
    pos = torch.arange(ids.shape[1]).unsqueeze(0)
    model.eval()
    with torch.no_grad():
        return model(ids, pos, None)


def test_embedded_smollm2_logits_match_transformers(megatron_runtime, embedded):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    r = recipe("smollm2_135m").pretrain
    model = model_lib.build_model(r, on_gpu=False, init=False)
    base_lib.load_hf_into(model, embedded, r)
    tok = AutoTokenizer.from_pretrained(embedded.path)
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    hf = AutoModelForCausalLM.from_pretrained(embedded.path, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = hf(ids).logits
    got = _logits(model, ids)[..., : expected.shape[-1]]
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=2e-3, rtol=1e-3)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_conversion_round_trips_tied_smollm2(embedded):
    r = recipe("smollm2_135m").pretrain
    hf = hf_convert.load_hf_state(embedded.path)
    keys = {"embedding.word_embeddings.weight", "decoder.final_layernorm.weight"}
    mg = hf_convert.hf_to_megatron(hf, r.model, 49152, keys)
    assert "output_layer.weight" not in mg  # tied: one embedding
    back = hf_convert.megatron_to_hf(mg, r.model)
    assert set(back) == set(hf) - {"lm_head.weight"}
    for key, value in back.items():
        assert torch.equal(value, hf[key]), key


def test_untied_gqa_model_exports_to_transformers_with_same_logits(megatron_runtime, tmp_path):
    from transformers import AutoModelForCausalLM

    r = recipe("tiny_cpu").pretrain
    torch.manual_seed(0)
    model = model_lib.build_model(r, on_gpu=False)
    with torch.no_grad():  # make norms non-trivial so a swapped norm would show
        for name, p in model.named_parameters():
            if name.endswith("layernorm.weight"):
                p.uniform_(0.5, 1.5)
    scratch = base_lib.Base("scratch", None, None)
    tokenizer = {"type": "huggingface", "name": "embedded"}
    out = export_model(model, r, tmp_path / "hf", scratch, tokenizer)
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["num_key_value_heads"] == 2
    assert (out / "tokenizer.json").is_file()
    hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.randint(0, 49152, (2, 24))
    with torch.no_grad():
        expected = hf(ids).logits
    torch.testing.assert_close(_logits(model, ids), expected, atol=1e-4, rtol=1e-4)
    # and back: HF -> megatron reproduces the model's own weights
    own = model.state_dict()
    mg = hf_convert.hf_to_megatron(
        hf_convert.load_hf_state(out),
        r.model,
        own["embedding.word_embeddings.weight"].shape[0],
        set(own),
    )
    for key, value in mg.items():
        assert torch.equal(value, own[key]), key


def test_converted_base_saved_as_megatron_checkpoint_loads_back(
    megatron_runtime, embedded, tmp_path
):
    from mind_nemo.pretrain import checkpoint

    cfg = recipe("smollm2_135m")
    model = model_lib.build_model(cfg.pretrain, on_gpu=False, init=False)
    base_lib.load_hf_into(model, embedded, cfg.pretrain)
    checkpoint.save_weights(tmp_path / "base", model)
    base = base_lib.resolve(str(tmp_path / "base"))
    assert base.kind == "megatron"
    fresh = model_lib.build_model(cfg.pretrain, on_gpu=False)
    assert "Megatron checkpoint" in base_lib.load(fresh, base, cfg)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name


def test_a_base_of_another_shape_is_refused(embedded):
    from mind_nemo.core.errors import UserError

    with pytest.raises(UserError, match="num_layers=2"):
        hf_convert.check_shape_matches(recipe("tiny_cpu").pretrain.model, embedded.path)


@pytest.mark.slow
def test_continued_pretraining_from_embedded_smollm2_then_export(mix_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "smol"
    run_stage(
        "pretrain",
        "pretrain=smollm2_135m",
        f"mix_dir={mix_dir}",
        f"output_dir={out}",
        "pretrain.train_iters=2",
        "pretrain.seq_length=64",
        "pretrain.micro_batch_size=1",
        "pretrain.global_batch_size=2",
        "pretrain.eval_iters=2",
        "pretrain.optimizer.warmup_iters=0",
        "tensorboard=false",
        timeout=600,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["base"]["kind"] == "hf" and "converted in memory" in manifest["start"]
    assert manifest["parameters"] == 134_515_008
    # a pretrained start: far below the ~10.8 nats of random weights, and it still goes down
    assert manifest["first_val_loss"] < 6.0
    assert manifest["last_val_loss"] < manifest["first_val_loss"]
    rows = read_rows(out / "metrics.jsonl")
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    hf = AutoModelForCausalLM.from_pretrained(out / "hf")
    tok = AutoTokenizer.from_pretrained(out / "hf")
    assert hf.config.tie_word_embeddings and hf.config.num_hidden_layers == 30
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    with torch.no_grad():
        loss = hf(ids, labels=ids).loss
    assert loss < 6.0  # the export is the trained pretrained model, not noise


@pytest.mark.slow
def test_step_convert_writes_a_megatron_base_once(mix_dir, tmp_path):
    out = tmp_path / "conv"
    args = ["pretrain=smollm2_135m", f"mix_dir={mix_dir}", f"output_dir={out}", "step=convert"]
    first = run_stage("pretrain", *args, timeout=300)
    assert f"convert: {out / 'base_megatron'}" in first.stdout
    assert (out / "base_megatron" / "metadata.json").is_file()
    source = json.loads((out / "base_megatron" / "source.json").read_text())
    assert source["kind"] == "hf" and source["spec"] == "embedded"
    stamp = (out / "base_megatron" / "metadata.json").stat().st_mtime_ns
    run_stage("pretrain", *args, timeout=300)  # a resubmitted job: nothing redone
    assert (out / "base_megatron" / "metadata.json").stat().st_mtime_ns == stamp
