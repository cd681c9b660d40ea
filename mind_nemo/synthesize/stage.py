"""``python -m mind_nemo.synthesize +style=NAME``: raw corpus -> contexts -> conversations.

The stage streams documents, cuts them into ~500-token contexts with the generator's tokenizer,
sends one request per context and style to an OpenAI-compatible server (launching it when the
config says so) and appends each conversation to the run folder as it arrives. Rerunning the same
command resumes: what is committed is never requested again. Run with ``--help`` for the main
overrides; the README has the full story.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mind_nemo.core.cli import CONFIG_PATH
from mind_nemo.core.config import typed_config
from mind_nemo.core.corpus import CorpusReader
from mind_nemo.core.errors import UserError, exit_on_user_error
from mind_nemo.core.jsonl import write_atomic, write_json_atomic
from mind_nemo.core.machine import usable_cores
from mind_nemo.core.records import Conversation
from mind_nemo.core.run_folder import RunFolder, check_folder_path, resolve_shard, take_lock
from mind_nemo.core.styles import CONVERSATION_STYLES
from mind_nemo.core.tables import format_table
from mind_nemo.core.tokenizer import load_fast_tokenizer
from mind_nemo.servers.client import Completion, OpenAICompatibleClient, RequestFailed
from mind_nemo.servers.embedded_model import context_window
from mind_nemo.servers.launch import ServerHandle, check_server_config, open_server
from mind_nemo.synthesize.accounting import SessionStats, describe_projection, project_full_run
from mind_nemo.synthesize.chunking import Chunker, split_fingerprint
from mind_nemo.synthesize.config import SynthesizeConfig
from mind_nemo.synthesize.engine import Engine
from mind_nemo.synthesize.identity import check_run_identity
from mind_nemo.synthesize.plan import Planner, PlanUnit, WorkItem
from mind_nemo.synthesize.prefetch import Prefetcher
from mind_nemo.synthesize.progress import GenerationProgress
from mind_nemo.synthesize.shard_store import ShardStore, count_by_reason
from mind_nemo.synthesize.styles import (
    StylePrompt,
    check_prefix_support,
    continuation_fields,
    load_prompt,
    template_flags,
)

log = logging.getLogger("mind_nemo.synthesize")
logging.getLogger("httpx").setLevel(logging.WARNING)

#: Tokens kept free between the estimated prompt length and the budget (template re-tokenises
#: a context slightly differently at its edges).
BUDGET_MARGIN = 16


def resolve_styles(cfg: SynthesizeConfig) -> list[StylePrompt]:
    """Load the prompt of every style the run asks for."""
    if cfg.style is None:
        raise UserError(
            "choose a style, e.g. +style=teacher_student "
            f"(one of: {', '.join((*CONVERSATION_STYLES, 'rephrase', 'all'))})"
        )
    styles = list(cfg.style.styles) or [cfg.style.name]  # values: checked by StyleConfig
    return [load_prompt(style, cfg.style.prompt_file) for style in styles]


class PromptBudget:
    """Turns chat messages into the request prompt and sizes ``max_tokens`` for each request.

    The template's own tokens are measured once per style (rendered around an empty context);
    a request's prompt length is that plus the context's tokens, so no request re-tokenises
    its whole prompt.
    """

    def __init__(self, cfg: SynthesizeConfig, tokenizer: Any, window: int) -> None:
        self.cfg, self.tokenizer = cfg, tokenizer
        self.total = min(cfg.sampling.max_total_tokens, window)
        caps = [c for c in (cfg.sampling.max_new_tokens, cfg.server.max_new_tokens) if c]
        self.cap = min(caps) if caps else None
        self._overhead: dict[str, int] = {}

    def render(self, messages: list[dict[str, str]]) -> list[dict[str, str]] | str:
        if self.cfg.server.api == "chat":
            return messages
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, **template_flags(messages)
        )

    def overhead(self, prompt: StylePrompt) -> int:
        if prompt.style not in self._overhead:
            ids = self.tokenizer.apply_chat_template(
                prompt.messages(""), tokenize=True, **template_flags(prompt.messages(""))
            )
            ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
            self._overhead[prompt.style] = len(ids)
        return self._overhead[prompt.style]

    def max_new_tokens(self, prompt: StylePrompt, context_tokens: int) -> int:
        room = self.total - self.overhead(prompt) - context_tokens - BUDGET_MARGIN
        return max(1, min(room, self.cap) if self.cap else room)

    def check(self, prompts: list[StylePrompt]) -> None:
        """Fail at start if the largest context leaves (almost) no room to answer."""
        worst = max(self.overhead(p) for p in prompts) + self.cfg.chunking.context_tokens
        if self.total - worst - BUDGET_MARGIN < 64:
            raise UserError(
                f"chunking.context_tokens={self.cfg.chunking.context_tokens} plus the prompt "
                f"({worst} tokens) leaves under 64 new tokens in sampling.max_total_tokens="
                f"{self.total}; lower the context size or raise the budget"
            )


def sampling_for(cfg: SynthesizeConfig) -> dict[str, Any]:
    params: dict[str, Any] = {"temperature": cfg.sampling.temperature, "top_p": cfg.sampling.top_p}
    if cfg.sampling.seed is not None:
        params["seed"] = cfg.sampling.seed
    return params


class SynthesizeRun:
    """Wires planner, store, client and engine together for one shard."""

    def __init__(self, cfg: SynthesizeConfig, raw_cfg: DictConfig) -> None:
        self.cfg = cfg
        self.raw_cfg = raw_cfg
        self.run_dir = Path(cfg.output_dir)
        self.shard_id, self.num_shards = resolve_shard(cfg.shard_id, cfg.num_shards)
        self.prompts = resolve_styles(cfg)
        self.prompt_of = {p.style: p for p in self.prompts}
        self.store = ShardStore(self.run_dir, self.shard_id, self.num_shards)
        self.stats = SessionStats()
        self.sampling = sampling_for(cfg)
        #: Set while generating; the planner's encode asks it how busy the loop is.
        self.prefetcher: Prefetcher | None = None
        self.cores = usable_cores()

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        check_folder_path(self.run_dir, "output_dir")
        check_server_config(cfg.server)
        check_prefix_support(self.prompts, cfg.server.type, cfg.server.api)
        check_run_identity(self.run_dir, cfg, self.prompts, record=False)
        reader = CorpusReader(cfg.corpus)
        tokenizer = load_fast_tokenizer(cfg.server.tokenizer or cfg.server.model)
        budget = PromptBudget(cfg, tokenizer, context_window(cfg.server))
        budget.check(self.prompts)
        # Everything checked: from here on the run folder is ours, and the shard only ours (a
        # second copy of this command, e.g. a requeued SLURM task, stops here in one line).
        self.lock = take_lock(
            self.run_dir,
            self.store.name,
            what=f"{self.store.name} of {self.run_dir}",
            enabled=cfg.lock,
            setting="lock=false",
        )
        check_run_identity(self.run_dir, cfg, self.prompts)
        self._save_config()
        self.store.load()
        retry = set(self.store.failed) if cfg.retry_failed else None
        if cfg.retry_failed and not retry:
            log.info("retry_failed=true but no failures are recorded; nothing to retry")
        self.split_fingerprint = split_fingerprint(tokenizer, cfg.chunking)
        planner = Planner(
            prompts=self.prompts,
            split=Chunker(tokenizer, cfg.chunking, threads=self._encode_threads).split_batch,
            render=budget.render,
            budget=lambda p, c: budget.max_new_tokens(p, c.num_tokens),
            samples_per_context=cfg.style.samples_per_context if cfg.style else 1,
            shard_id=self.shard_id,
            num_shards=self.num_shards,
            limit=cfg.limit,
            skip=self._skip,
            only=retry,
            noted=self.store.documents.get,
            split_fingerprint=self.split_fingerprint,
        )
        total = cfg.limit * len(self.prompts) if cfg.limit else None
        if retry is not None:
            total = len(retry)
        elif total:
            total = max(0, total - len(self.store.done_keys) - len(self.store.failed))
        self.progress = GenerationProgress(self.stats, total, cfg.progress)
        self.store.open()
        status, detail = "incomplete", ""
        try:
            with open_server(cfg.server, self.run_dir) as server:
                # until_error: a damaged corpus file ends the stream, in-flight work finishes.
                outcome = asyncio.run(self._generate(server, planner.units(reader.until_error())))
            status = "complete" if outcome.status == "finished" else outcome.status
            detail = outcome.detail
            if status == "complete" and reader.error is not None:
                status, detail = "bad_corpus_file", str(reader.error)
            elif status == "complete" and planner.contexts_seen == 0 and cfg.limit != 0:
                skipped = sum(reader.skipped.values())
                status = "no_contexts"
                detail = (
                    f"the corpus gave no contexts: {reader.read} documents read "
                    f"({planner.documents_seen} in this shard), {skipped} bad rows and "
                    f"{len(reader.bad_files)} damaged files skipped; check corpus.path and "
                    "corpus.text_field"
                )
        finally:
            self.progress.close()
            if cfg.retry_failed:
                self.store.compact_failures()
            self.store.close()
            manifest = self._write_manifest(status, detail, planner, reader, budget)
            self.lock.close()
        return manifest

    def _skip(self, key: tuple) -> bool:
        if key in self.store.done_keys:
            return True
        return not self.cfg.retry_failed and key in self.store.failed

    def _request_sampling(self, item: WorkItem) -> dict[str, Any]:
        return {
            **self.sampling,
            "max_tokens": item.max_tokens,
            **continuation_fields(item.prompt),
        }

    def _encode_threads(self) -> int:
        """Threads for the planner's next batch encode: every usable core while requests wait
        for the plan (the loop has nothing to do then), one while the plan is ahead (the loop
        keeps a core: on 2 cores, encoding on both all the time took the loop 2.7-2.9 ms
        instead of 1.3 ms from an answer to the next request, against a 50 ms server)."""
        prefetcher = self.prefetcher
        return self.cores if prefetcher is not None and prefetcher.starving else 1

    def _record_plan(self, chunk: list[PlanUnit]) -> None:
        """Append a chunk's document notes and contexts to their files, in the planner thread
        (the loop never writes those two files), before the loop can send any of its requests."""
        documents: list[str] = []
        contexts: list[str] = []
        for unit in chunk:
            if (note := unit.note) is not None:
                row = self.store.document_row(
                    note.document_id, note.text_hash, self.split_fingerprint, note.contexts
                )
                if row is not None:
                    documents.append(row)
            if unit.context is not None and (row := self.store.context_row(unit.context)):
                contexts.append(row)
        self.store.append_plan_rows(documents, contexts)

    async def _generate(self, server: ServerHandle, units: Iterator[PlanUnit]) -> Any:
        cfg = self.cfg
        client = OpenAICompatibleClient(
            server.base_url,
            server.model,
            api=cfg.server.api,
            api_key=server.api_key,
            timeout_s=cfg.engine.request_timeout_s,
            max_retries=cfg.engine.max_retries,
            backoff_initial_s=cfg.engine.backoff_initial_s,
            backoff_max_s=cfg.engine.backoff_max_s,
            max_connections=cfg.engine.max_concurrent_requests,
            circuit_breaker=True,  # an outage waits (up to server_dead_after_s), rows keep tries
        )
        async with client:
            self.stats.started = time.monotonic()  # throughput counts generation time only
            engine = Engine(
                client,
                cfg.engine,
                sampling=self._request_sampling,
                on_success=self._on_success,
                on_failure=self._on_failure,
                server_alive=server.is_alive,
            )
            self.model_name = server.model
            prefetcher = self.prefetcher = Prefetcher.for_requests(
                units, self._record_plan, cfg.engine.max_concurrent_requests
            )
            prefetcher.start()
            try:
                return await engine.run(prefetcher)
            finally:
                prefetcher.stop()
                self.planning = {
                    "planner_thread_cpu_s": round(prefetcher.producer_cpu_s, 3),
                    "requests_waiting_for_plan_s": round(prefetcher.waited_s, 3),
                    "main_thread_cpu_s": round(time.thread_time(), 3),
                }

    def _on_success(self, item: WorkItem, completion: Completion) -> None:
        self.store.commit(
            Conversation(
                text=self.prompt_of[item.style].answer_text(completion.text),
                conversational_style=item.style,
                document_id=item.context.document_id,
                context_index=item.context.index,
                sample=item.sample,
                model=self.cfg.server.model,
                sampling={**self.sampling, "max_tokens": item.max_tokens},
                prompt_hash=item.prompt_hash,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                cached_tokens=completion.cached_tokens,
                finish_reason=completion.finish_reason,
                created=time.time(),
                latency_s=round(completion.latency_s, 3),
            )
        )
        self.stats.record_success(
            item.style, completion.prompt_tokens, completion.cached_tokens,
            completion.completion_tokens,
        )  # fmt: skip
        self.progress.update()

    def _on_failure(self, item: WorkItem, failure: RequestFailed) -> None:
        log.warning("request %s failed after %d tries: %s", item.key, failure.attempts, failure)
        self.store.fail(item.key, failure.reason, failure.detail, failure.attempts)
        self.stats.record_failure(item.style, failure.reason)
        self.progress.update()

    def _save_config(self) -> None:
        """The resolved config of this session; it holds env var names, never secrets."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(RunFolder(self.run_dir).config, OmegaConf.to_yaml(self.raw_cfg, resolve=True))

    def _write_manifest(
        self, status: str, detail: str, planner: Planner, reader: CorpusReader, budget: Any
    ) -> dict[str, Any]:
        cfg = self.cfg
        totals = self.store.totals()
        session = self.stats.summary()
        done_tokens = sum(s["completion_tokens"] for s in totals.by_style.values())
        gpus = cfg.projection.gpus or (
            1 if cfg.server.type == "local"
            else cfg.server.tensor_parallel_size * cfg.server.num_nodes
        )  # fmt: skip
        projection = project_full_run(
            gpu_tokens_per_s=cfg.projection.gpu_tokens_per_s,
            mean_completion_tokens=done_tokens / max(totals.conversations, 1),
            context_tokens=cfg.chunking.context_tokens,
            target_corpus_tokens=cfg.projection.target_corpus_tokens,
            styles=cfg.projection.styles,
            cluster_gpus=cfg.projection.cluster_gpus,
            measured_tokens_per_s=session["output_tokens_per_s"],
            measured_on=f"server={cfg.server.type} ({cfg.server.model}, {gpus} device(s))",
        )
        manifest = self.store.write_manifest(
            status,
            totals,
            {
                "detail": detail,
                "styles": [p.style for p in self.prompts],
                "model": cfg.server.model,
                "server": cfg.server.type,
                "limit": cfg.limit,
                "documents_read": planner.documents_seen,
                "contexts_planned": planner.contexts_seen,
                "documents_skipped_done": planner.documents_skipped,
                "planning": getattr(self, "planning", {}),
                "corpus_rows_skipped": dict(reader.skipped),
                "corpus_files_skipped": dict(reader.bad_files),
                "corpus_ids_renamed": reader.renamed_ids,
                "failure_reasons": dict(count_by_reason(self.store.failed)),
                "session": session,
                "projection": projection,
            },
        )
        if self.num_shards == 1:
            write_json_atomic(RunFolder(self.run_dir).manifest, manifest)
        return manifest


def print_summary(cfg: SynthesizeConfig, run: SynthesizeRun, manifest: dict[str, Any]) -> None:
    session = manifest["session"]
    rows = []
    for style, t in sorted(manifest["by_style"].items()):
        fails = session["by_style"].get(style, {}).get("failures", 0)
        rows.append([style, t["conversations"], t["prompt_tokens"], t["completion_tokens"], fails])
    print()
    print(f"run folder:     {run.run_dir}")
    print(f"conversations:  {run.store.conversations_path}")
    limit = f" (limit={cfg.limit} contexts; limit=null for all)" if cfg.limit else ""
    print(f"contexts:       {manifest['contexts']}{limit}")
    print(format_table(["style", "conversations", "prompt tok", "completion tok", "failures"],
                       rows or [["-", 0, 0, 0, 0]]))  # fmt: skip
    print(
        f"this session:   {session['requests']} requests in {session['wall_time_s']:.1f}s, "
        f"{session['output_tokens_per_s']:.1f} output tok/s, "
        f"{session['requests_per_s']:.2f} req/s, "
        f"{session['failures']} failed"
    )
    projection = manifest.get("projection")
    if projection:
        print("\n".join(describe_projection(projection)))
    print(f"status:         {manifest['status']} {manifest.get('detail') or ''}".rstrip())


@exit_on_user_error
def run_synthesize(raw_cfg: DictConfig) -> dict[str, Any]:
    cfg: SynthesizeConfig = typed_config(raw_cfg, SynthesizeConfig)
    run = SynthesizeRun(cfg, raw_cfg)
    manifest = run.run()
    print_summary(cfg, run, manifest)
    if manifest["status"] in ("bad_corpus_file", "no_contexts"):
        raise UserError(
            f"{manifest['detail']} ({manifest['conversations']} conversations are committed)"
        )
    if manifest["status"] == "server_dead":
        raise UserError(
            f"the server died; {manifest['conversations']} conversations are committed, "
            "rerun the same command to resume"
        )
    return manifest


#: Thread pools of libraries this process loads, off unless the user set them. The planner
#: spreads its batch encode over threads itself (see ``_encode_threads``), and the tokenizer's
#: own pool would spin beside the event loop. numpy, loaded for the boundary ranking, starts
#: OpenBLAS with a thread per core that spins for a while though we never call BLAS: importing
#: numpy took 0.20-0.47 CPU-s that way and 0.10-0.13 s with one thread (10 runs each, 2 cores).
THREAD_DEFAULTS = {"TOKENIZERS_PARALLELISM": "false", "OPENBLAS_NUM_THREADS": "1"}


def set_thread_defaults() -> None:
    """Apply :data:`THREAD_DEFAULTS` where the environment says nothing (before any import of
    those libraries; they read it once, when loaded)."""
    for name, value in THREAD_DEFAULTS.items():
        os.environ.setdefault(name, value)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="synthesize")
def main(cfg: DictConfig) -> None:
    set_thread_defaults()
    run_synthesize(cfg)
