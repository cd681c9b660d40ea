"""The optional LLM judge: score parsing, and the stage talking to a tiny local
OpenAI-compatible stub through the same client as synthesis (record by default, drop on request,
off unless enabled)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from aiohttp import web

from mind_nemo.filter.rules.judge import parse_scores
from mind_nemo.servers.launch import free_port
from tests.filter.helpers import (
    context_row,
    conversation_row,
    filter_run,
    make_run,
    read_jsonl,
)

ALL_FIVE = "correctness: 5\nfaithfulness: 5\ninformation_preservation: 5\nnew_knowledge: 4"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            ALL_FIVE,
            {
                "correctness": 5,
                "faithfulness": 5,
                "information_preservation": 5,
                "new_knowledge": 4,
            },
        ),
        (
            "**Correctness:** 4\n**Faithfulness**: 3\n"
            "Information preservation - 2\nNew knowledge: 1",
            {
                "correctness": 4,
                "faithfulness": 3,
                "information_preservation": 2,
                "new_knowledge": 1,
            },
        ),
        (
            '{"correctness": 3, "faithfulness": 4, "information_preservation": 5, '
            '"new_knowledge": 2}',
            {
                "correctness": 3,
                "faithfulness": 4,
                "information_preservation": 5,
                "new_knowledge": 2,
            },
        ),
        ("correctness: 5\nfaithfulness: 5", None),
        ("I liked this conversation a lot.", None),
        (
            '{"correctness": 9, "faithfulness": 4, "information_preservation": 5, '
            '"new_knowledge": 2}',
            None,
        ),
    ],
)
def test_parse_scores(answer, expected):
    assert parse_scores(answer) == expected


class JudgeStub:
    """OpenAI-compatible chat endpoint on loopback that grades by what it is shown."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.requests: list[dict] = []
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "judge stub did not start"

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        prompt = body["messages"][-1]["content"]
        if "Con:" in prompt:  # the debate conversation gets a poor correctness score
            answer = ALL_FIVE.replace("correctness: 5", "correctness: 2")
        elif "Interviewer:" in prompt:
            answer = "Looks fine to me."
        else:
            answer = ALL_FIVE
        return web.json_response(
            {
                "choices": [{"message": {"content": answer}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20},
            }
        )

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def overrides(self) -> list[str]:
        return [
            "judge.enabled=true",
            "judge.server.type=openai",
            f"judge.server.base_url={self.url}",
            "judge.server.model=stub-judge",
            "judge.server.api_key_env=null",
            "judge.max_concurrent_requests=4",
            "judge.batch_size=2",
        ]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def stub():
    server = JudgeStub()
    yield server
    server.stop()


@pytest.fixture
def run(tmp_path):
    rows = [conversation_row(0, 0, s) for s in ("teacher_student", "debate", "interview")]
    return make_run(tmp_path / "run", [rows], [[context_row(0, 0)]])


def test_judge_records_scores_and_keeps_everything_by_default(stub, run, tmp_path):
    manifest = filter_run(run, tmp_path / "out", *stub.overrides())
    assert manifest["conversations"]["kept"] == 3
    assert manifest["judge"]["requests"] == 3 == len(stub.requests)
    assert (manifest["judge"]["scored"], manifest["judge"]["unparsed"]) == (2, 1)
    assert manifest["judge"]["passing"] == 1  # debate's correctness 2 is under min_score 3
    rows = {
        r["conversational_style"]: r
        for r in read_jsonl(tmp_path / "out" / "conversations" / "shard-00000-of-00001.jsonl")
    }
    assert rows["debate"]["judge_scores"]["correctness"] == 2
    assert rows["teacher_student"]["judge_scores"]["new_knowledge"] == 4
    assert rows["interview"]["judge_error"] == "unparsed"
    sent = stub.requests[0]
    assert sent["model"] == "stub-judge" and sent["temperature"] == 0.0
    assert "SOURCE TEXT" in sent["messages"][0]["content"]  # our prompt, with the context


def test_judge_drops_low_scores_only_when_asked(stub, run, tmp_path):
    manifest = filter_run(run, tmp_path / "out", *stub.overrides(), "judge.drop=true")
    assert manifest["reasons"] == {"judge_low_score": 1}
    assert manifest["by_style"]["debate"]["kept"] == 0
    strict = filter_run(
        run, tmp_path / "strict", *stub.overrides(), "judge.drop=true", "judge.drop_unscored=true"
    )
    assert strict["reasons"] == {"judge_low_score": 1, "judge_unscored": 1}


def test_judge_is_off_by_default(stub, run, tmp_path):
    manifest = filter_run(run, tmp_path / "out")
    assert manifest["judge"] is None
    assert stub.requests == []
    rows = read_jsonl(tmp_path / "out" / "conversations" / "shard-00000-of-00001.jsonl")
    assert not any("judge_scores" in r for r in rows)
