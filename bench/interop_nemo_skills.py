"""Hand our contexts and prompt files to NeMo-Skills' own code, and take its output back.

NeMo-Skills is not on PyPI, so the tests cannot import it; this script takes a checkout (and a
Python that can import it, e.g. a separate venv with its light dependencies) and checks:

1. **prompts**: NeMo-Skills' ``get_prompt(<our style yaml>).fill(<our contexts row>)`` gives
   exactly the messages ``load_prompt(style).messages(row["text"])`` gives, for every style,
   and for user files using ``system: ''`` and ``{examples}``; a file setting our
   ``response_prefix`` or an unknown key is refused by both loaders (recorded, not hidden);
2. **generate**: ``python -m nemo_skills.inference.generate ++input_file=<our contexts>
   ++prompt_config=<our yaml>`` against the stub server (``mind_nemo.servers.stub``), with the
   paper's sampling overrides; the command is printed as run;
3. **import**: ``python -m mind_nemo.import_nemo_skills`` on that output, then
   ``python -m mind_nemo.filter``; the imported conversations must be the ``generation`` texts.

The contexts rows come from a real ``mind_nemo.synthesize`` run (stub server, 3 contexts).

Usage::

    python bench/interop_nemo_skills.py [/path/to/NeMo-Skills] [--python /venv/bin/python]

The checkout may also come from ``NEMO_SKILLS_DIR`` and the interpreter from
``NEMO_SKILLS_PYTHON`` (default: this one). Without a checkout it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mind_nemo.core.errors import UserError  # noqa: E402
from mind_nemo.core.styles import ALL_STYLES  # noqa: E402
from mind_nemo.servers.stub import StubProcess  # noqa: E402
from mind_nemo.synthesize.styles import builtin_prompt_path, load_prompt  # noqa: E402

SHARD = "shard-00000-of-00001"
#: What runs inside NeMo-Skills' interpreter: its loader on each (name, yaml) over the rows.
NS_FILL = """
import json, sys
from nemo_skills.prompt.utils import get_prompt
files, rows = json.loads(sys.argv[1]), [json.loads(l) for l in open(sys.argv[2])]
out = {}
for name, path in files.items():
    try:
        prompt = get_prompt(path)
        out[name] = [prompt.fill(dict(row)) for row in rows]
    except Exception as err:
        out[name] = {"refused": f"{type(err).__name__}: {err}"}
print(json.dumps(out))
"""
USER_FILES = {
    "system_empty": "system: ''\nuser: |-\n  {context}\n\n  Discuss the text above.\n",
    "examples": "user: |-\n  {examples}{context}\n\n  Discuss the text above.\n",
    "response_prefix": "user: '{context}'\nresponse_prefix: 'Student 1:'\n",
    "unknown_key": "user: '{context}'\ntemperature: 0.5\n",
}


def run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})  # fmt: skip
    if result.returncode != 0:
        tail = (result.stdout[-1500:] + result.stderr[-3000:]).strip()
        raise SystemExit(f"FAILED ({result.returncode}): {shlex.join(cmd)}\n{tail}")
    return result.stdout


def make_contexts(stub: StubProcess, work: Path) -> Path:
    """Contexts rows as synthesize writes them (3 contexts of the sample corpus)."""
    out = work / "synth"
    run([sys.executable, "-m", "mind_nemo.synthesize", *stub.overrides(), "+style=debate",
         "limit=3", f"output_dir={out}", "progress=false"])  # fmt: skip
    return out / "contexts" / f"{SHARD}.jsonl"


def ours(name: str, path: Path, rows: list[dict[str, Any]]) -> Any:
    try:
        prompt = load_prompt("debate", path)
    except UserError as err:
        return {"refused": str(err)}
    return [prompt.messages(row["text"]) for row in rows]


def check_prompts(python: str, checkout: Path, contexts: Path, work: Path) -> bool:
    files = {style: str(builtin_prompt_path(style)) for style in ALL_STYLES}
    for name, text in USER_FILES.items():
        (work / f"{name}.yaml").write_text(text)
        files[name] = str(work / f"{name}.yaml")
    out = run([python, "-c", NS_FILL, json.dumps(files), str(contexts)],
              env={"PYTHONPATH": str(checkout)})  # fmt: skip
    theirs = json.loads(out.strip().splitlines()[-1])
    rows = [json.loads(line) for line in contexts.read_text().splitlines()]
    ok = True
    print(f"prompts: NeMo-Skills get_prompt(...).fill(row) vs ours, {len(rows)} contexts rows")
    for name, path in files.items():
        mine, their = ours(name, Path(path), rows), theirs[name]
        if isinstance(mine, dict) or isinstance(their, dict):
            same = isinstance(mine, dict) and isinstance(their, dict)
            verdict = "both refuse" if same else "DIFFER"
            detail = f"ours: {_short(mine)} | NeMo-Skills: {_short(their)}"
        else:
            same = mine == their
            verdict = "identical" if same else "DIFFER"
            detail = f"roles {[m['role'] for m in mine[0]]}"
        if name == "response_prefix":  # ours alone: we load it, NeMo-Skills refuses it
            same = isinstance(their, dict) and not isinstance(mine, dict)
            verdict = "ours only (NeMo-Skills refuses it, as documented)" if same else "DIFFER"
            detail = f"NeMo-Skills: {_short(their)}"
        ok &= same
        print(f"  {name:16s} {verdict:12s} {detail}")
    return ok


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("refused", value))[:110]
    return f"{len(value)} prompts"


def generate(python: str, checkout: Path, stub: StubProcess, contexts: Path, out: Path) -> Path:
    output = out / "debate" / "output.jsonl"
    cmd = [
        python, "-m", "nemo_skills.inference.generate",
        f"++input_file={contexts}", f"++output_file={output}",
        f"++prompt_config={builtin_prompt_path('debate')}",
        "++server.server_type=vllm", f"++server.base_url={stub.url}", "++server.model=stub",
        "++inference.temperature=1.0", "++inference.top_p=0.9",
        "++inference.tokens_to_generate=512",
    ]  # fmt: skip
    print("generate:", shlex.join(cmd))
    run(cmd, env={"PYTHONPATH": str(checkout)}, timeout=300)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    print(f"  wrote {output} ({len(rows)} rows; fields: {', '.join(sorted(rows[0]))})")
    return output


def import_and_filter(output: Path, work: Path) -> bool:
    run_dir, filtered = work / "imported", work / "filtered"
    cmd = [sys.executable, "-m", "mind_nemo.import_nemo_skills", "+style=debate",
           f"input={output.parent}", "server.model=stub", "server.tokenizer=embedded",
           f"output_dir={run_dir}"]  # fmt: skip
    print("import:", shlex.join(cmd))
    for line in run(cmd).strip().splitlines():
        print("  " + line)
    run([sys.executable, "-m", "mind_nemo.filter", f"run_dir={run_dir}",
         f"output_dir={filtered}", "progress=false"])  # fmt: skip
    generations = [json.loads(line)["generation"] for line in output.read_text().splitlines()]
    convs = run_dir / "conversations" / f"{SHARD}.jsonl"
    imported = [json.loads(line)["text"] for line in convs.read_text().splitlines()]
    manifest = json.loads((filtered / "manifest.json").read_text())
    same = sorted(imported) == sorted(generations)
    print(f"  imported texts == NeMo-Skills 'generation' fields: {same}")
    print(f"  filter: {manifest['conversations']}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", nargs="?", default=os.environ.get("NEMO_SKILLS_DIR"))
    parser.add_argument("--python", default=os.environ.get("NEMO_SKILLS_PYTHON", sys.executable))
    args = parser.parse_args()
    checkout = Path(args.checkout) if args.checkout else None
    if checkout is None or not (checkout / "nemo_skills" / "prompt" / "utils.py").is_file():
        print("skipped: no NeMo-Skills checkout (pass its path or set NEMO_SKILLS_DIR; get one "
              "with git clone https://github.com/NVIDIA/NeMo-Skills)")  # fmt: skip
        return 0
    print(f"NeMo-Skills checkout: {checkout}  python: {args.python}")
    with tempfile.TemporaryDirectory(prefix="interop-ns-") as tmp, StubProcess() as stub:
        work = Path(tmp)
        contexts = make_contexts(stub, work)
        ok = check_prompts(args.python, checkout, contexts, work)
        output = generate(args.python, checkout, stub, contexts, work / "ns_out")
        ok &= import_and_filter(output, work)
    print("RESULT:", "all hand-offs match" if ok else "MISMATCH (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
