"""The model lm-eval talks to: a checkpoint loaded in-process, or an OpenAI-compatible server.

``model.path`` (a Hugging Face directory such as the pretrain stage's ``<run>/hf``, a Hub name,
or ``embedded``) is loaded here and handed to lm-eval's ``hf`` model as an object, so a broken
path is one clear error and the embedded model's GGUF-converted directory loads like any other.
``server=...`` reuses :func:`mind_nemo.servers.open_server` (launching the embedded
``transformers serve`` for ``server=local``) and lm-eval's ``local-completions`` or
``local-chat-completions`` model. Multiple-choice tasks are scored by the log-probability of each
answer given the prompt; a server must echo prompt log-probs for that, so we ask it once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mind_nemo.core.errors import UserError
from mind_nemo.evaluate.config import EvaluateConfig, ModelConfig
from mind_nemo.servers.embedded_model import EMBEDDED_NAME, resolve_model_path


@dataclass
class Backend:
    """A ready lm-eval model plus what it can do."""

    lm: Any
    description: dict[str, Any]
    #: Can score answers by log-likelihood (multiple choice, MMLU, General Reasoning).
    loglikelihood: bool = True
    #: Prompts go through the chat template (chat servers).
    chat: bool = False
    #: What ``lm_eval --model_args`` would have said; lm-eval's results file takes the model's
    #: name (and its folder name) from it.
    model_args: str = ""


def _looks_like_hub_name(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 2 and all(parts) and not path.startswith((".", "~"))


def checkpoint_dir(path: str | None) -> str:
    """Resolve ``model.path``: ``embedded``, an existing model folder, or a Hub name."""
    if not path:
        raise UserError("say what to evaluate: model.path=<HF dir|embedded> or server=<name>")
    if path == EMBEDDED_NAME:
        return resolve_model_path(path)
    local = Path(path).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise UserError(
                f"model.path {path!r} is not a Hugging Face model folder (no config.json)"
            )
        return str(local.resolve())
    if _looks_like_hub_name(path):
        return path
    raise UserError(f"model.path {path!r} does not exist")


def load_hf(cfg: ModelConfig) -> Backend:
    """Load weights and tokenizer ourselves, then wrap them in lm-eval's ``HFLM``."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = checkpoint_dir(cfg.path)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    dtype = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype, None)
    if dtype is None:
        raise UserError(f"model.dtype {cfg.dtype!r} is not a torch dtype")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        # transformers wraps .to() in functools.wraps(Module.to): typeshed then reads the
        # bound call's first argument as ``self``.
        model = model.to(cfg.device).eval()  # type: ignore[arg-type]
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load model {cfg.path!r}: {first}") from None
    # HFLM warns that a model object (rather than a name) was passed: that is our design.
    hf_log = logging.getLogger("lm_eval.models.huggingface")
    level = hf_log.level
    hf_log.setLevel(logging.ERROR)
    try:
        lm = HFLM(
            pretrained=model,
            tokenizer=tokenizer,
            batch_size=cfg.batch_size,
            max_length=cfg.max_length,
            device=cfg.device,
        )
    finally:
        hf_log.setLevel(level)
    description = {"backend": "hf", "path": cfg.path, "resolved": path, "dtype": cfg.dtype}
    return Backend(lm=lm, description=description, model_args=f"pretrained={path}")


def prompt_logprobs_supported(base_url: str, model: str, api_key: str | None) -> bool:
    """Ask ``/v1/completions`` to echo a prompt with log-probs; True if it does."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"model": model, "prompt": "one two three four", "max_tokens": 1, "temperature": 0,
            "echo": True, "logprobs": 1}  # fmt: skip
    try:
        reply = httpx.post(f"{base_url}/completions", json=body, headers=headers, timeout=120)
        choice = reply.json()["choices"][0]
        token_logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or []
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return False
    return reply.status_code == 200 and len(token_logprobs) >= 3


def unseeded_when_sampling(api_class: type) -> type:
    """lm-eval sends one fixed ``seed`` with every request, so a server that honours it returns
    the same sample K times and a majority vote degenerates. Drop the seed from sampled
    requests (temperature > 0); greedy requests keep it."""

    class Unseeded(api_class):
        def _create_payload(self, *args: Any, **kwargs: Any) -> dict:
            payload = super()._create_payload(*args, **kwargs)
            if (payload.get("temperature") or 0) > 0:
                payload.pop("seed", None)
            return payload

    Unseeded.__name__ = f"Unseeded{api_class.__name__}"
    return Unseeded


def _server_tokenizer(name: str) -> str | None:
    """A tokenizer lm-eval can load for the served model, or None (generation still works).

    lm-eval hands the name to ``transformers.AutoTokenizer``, which knows nothing of our
    aliases: ``embedded`` becomes the converted model folder and ``~`` is expanded, so what
    lm-eval sees is a Hub name or a directory."""
    from mind_nemo.servers.embedded_model import load_tokenizer

    try:
        resolved = resolve_model_path(name)
        local = Path(resolved).expanduser()
        resolved = str(local.resolve()) if local.exists() else resolved
        load_tokenizer(resolved)
    except (UserError, OSError, ValueError):
        return None
    return resolved


@contextlib.contextmanager
def open_backend(cfg: EvaluateConfig, log_dir: Path) -> Iterator[Backend]:
    """Yield the backend for ``cfg``; a launched server is stopped on the way out."""
    if cfg.server is None:
        yield load_hf(cfg.model)
        return
    if cfg.model.path:
        raise UserError("give either model.path or server=..., not both")
    from lm_eval.api.registry import get_model

    from mind_nemo.servers.launch import open_server

    with open_server(cfg.server, log_dir) as handle:
        chat = cfg.api == "chat"
        tokenizer = _server_tokenizer(cfg.server.tokenizer or handle.model)
        loglikelihood = (
            not chat
            and tokenizer is not None
            and prompt_logprobs_supported(handle.base_url, handle.model, handle.api_key)
        )
        args = {
            "model": handle.model,
            "base_url": f"{handle.base_url}/{'chat/completions' if chat else 'completions'}",
            "tokenizer": tokenizer,
            "tokenizer_backend": "huggingface" if tokenizer else None,
            "tokenized_requests": False,
            "num_concurrent": cfg.num_concurrent,
            "max_retries": 3,
            "seed": cfg.seed,
        }
        lm = unseeded_when_sampling(
            get_model("local-chat-completions" if chat else "local-completions")
        )(**args)
        description = {
            "backend": "server",
            "server": cfg.server.type,
            "model": cfg.server.model,
            "api": cfg.api,
            "prompt_logprobs": loglikelihood,
        }
        # lm-eval's API models read the key from OPENAI_API_KEY; set it only for this run.
        previous = os.environ.get("OPENAI_API_KEY")
        if handle.api_key:
            os.environ["OPENAI_API_KEY"] = handle.api_key
        try:
            yield Backend(
                lm=lm,
                description=description,
                loglikelihood=loglikelihood,
                chat=chat,
                model_args=f"model={handle.model},base_url={args['base_url']}",
            )
        finally:
            if handle.api_key:
                if previous is None:
                    os.environ.pop("OPENAI_API_KEY", None)
                else:
                    os.environ["OPENAI_API_KEY"] = previous
