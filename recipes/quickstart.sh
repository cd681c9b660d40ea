#!/usr/bin/env bash
# The whole MIND pipeline on a CPU, one stage per command, read top to bottom.
#
#   recipes/quickstart.sh            # run folders under runs/quickstart/ (RUN=... to move them)
#
# Everything here uses the embedded model, SmolLM2-135M-Instruct, both as the generator (served by
# a real `transformers serve` on 127.0.0.1) and as the base model we continue pretraining. The
# numbers it prints only show that every stage works; the paper's experiments are one command
# each too (`python -m mind_nemo.submit --list`, README "Recipes"). Every stage resumes: if this
# script is interrupted, run it again and finished work is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
RUN=${RUN:-runs/quickstart}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

# 1. Synthesize. The packaged sample corpus (26 math pages in OpenWebMath's shape) is cut into
#    ~500-token contexts with the generator's tokenizer; each context is rewritten in all seven
#    conversational styles (two students, teacher-student, two professors, debate, problem
#    solving, layman-knowall, interview), zero-shot, temperature 1.0, top-p 0.9, as in the paper.
#    A 135M model on two cores is slow, so: one context, answers capped at 128 tokens, and the
#    server's KV cache held to 30% of free memory (its default takes ~14 GB, which does not fit
#    beside other work on a 24 GB machine). On a cluster this is a job array against vLLM,
#    SGLang or TensorRT-LLM (README "Cluster (SLURM)").
step "1/7 synthesize: 7 styles x 1 context with the embedded model"
$PY -m mind_nemo.synthesize +style=all limit=1 server.max_new_tokens=128 \
  server.kv_cache_memory_fraction=0.3 engine.max_concurrent_requests=7 \
  output_dir="$RUN/synthesize" progress=false

# 2. Filter, twice, because a 135M model's output is mostly not usable data and this demo should
#    say so rather than hide it:
#    - the default filter (truncation, speakers and turns, echoed instructions, loops,
#      faithfulness, duplicates) gives the honest verdict: expect it to keep few or none of the
#      seven; its summary prints the kept share and the top reasons;
#    - the training set uses the paper's rule (drop conversations under 50 generator tokens).
#      It keeps the loops a 135M model writes until its token cap, but not silently: the loop
#      check always measures them, the filter's summary warns how many kept rows are loops and
#      the manifest counts them. With the loop check on (filter.degeneration.enabled=true) one
#      or two of the seven survive, too few to give the mix's and pretrain's validation parts
#      a document. With a real generator the default filter is the one to train on.
#    Every rejected row is kept under rejects/ with its reason. The variants are the paper's
#    training sets: LONGEST (per context), ALL, CONCAT (raw context + its conversations), RAW.
step "2/7 filter: the default verdict, then the training set (paper rule; loops counted)"
$PY -m mind_nemo.filter run_dir="$RUN/synthesize" output_dir="$RUN/filter-default" \
  overwrite=true progress=false
$PY -m mind_nemo.filter run_dir="$RUN/synthesize" output_dir="$RUN/filter" filter=paper \
  overwrite=true progress=false

# 3. Reports: every count recomputed from the data files, the quality scorecard per style (length
#    beside the paper's, number recall, invented numbers, diversity, loops) and plots, as
#    report.md and report.html; viewer.html shows each context beside its conversations with
#    the verdict and reason of each (open it in a browser; it needs no network).
step "3/7 reports and viewers"
$PY -m mind_nemo.report "$RUN/filter-default"
$PY -m mind_nemo.report "$RUN/filter"

# 4. Mix: tokenize the kept conversations, the raw sample and a general-web sample into Megatron
#    .bin/.idx datasets and blend them 2:1 math to general by tokens (inside math, conversations
#    and raw text 1:1), the paper's recipe in miniature. Same tokenizer as the model we train.
step "4/7 mix: Megatron datasets + 2:1 blend"
$PY -m mind_nemo.mix mix=quickstart_conversations sources.conversations.path="$RUN/filter" \
  output_dir="$RUN/mix" progress=false

# 5. Continued pretraining with megatron-core from the embedded base (SmolLM2-135M converted to a
#    Megatron checkpoint), a few short steps on the blend, then exported back to Hugging Face
#    format in $RUN/pretrain/hf. The paper's run is pretrain=mind_7b on 16 nodes (README).
step "5/7 continued pretraining from the embedded base"
$PY -m mind_nemo.pretrain pretrain=smollm2_135m base_checkpoint=embedded \
  pretrain.train_iters=4 pretrain.save_interval=4 pretrain.eval_interval=4 \
  mix_dir="$RUN/mix" output_dir="$RUN/pretrain"

# 6. Evaluate the base and the continued model on the fixtures suite: the paper's benchmarks
#    (GSM8K 8-shot CoT, MATH 4-shot Minerva, MMLU/MMLU-STEM 5-shot, 10 general-reasoning tasks)
#    with their real prompts and metrics, on a few packaged questions each. suite=paper runs the
#    full sets (GPU advised).
step "6/7 evaluate: base vs continued, fixtures suite"
EVAL=(suite=fixtures limit=1 max_gen_toks=32)
$PY -m mind_nemo.evaluate model.path=embedded "${EVAL[@]}" name=base \
  output_dir="$RUN/evaluate/base"
$PY -m mind_nemo.evaluate model.path="$RUN/pretrain/hf" "${EVAL[@]}" name=continued \
  output_dir="$RUN/evaluate/continued"

# 7. Compare: the paper's table (GSM8K, MATH, MMLU-STEM, MMLU, GR, Avg) with our two rows beside
#    the paper's reported OWM-4B rows, as table.md, table.json and chart.png.
step "7/7 compare"
$PY -m mind_nemo.evaluate.compare \
  "runs=[$RUN/evaluate/base,$RUN/evaluate/continued]" output_dir="$RUN/compare"

# What the demo's data is worth, in two lines (from the two filter manifests).
$PY - "$RUN" <<'EOF'
import json, sys
for name, what in (("filter-default", "default filter"), ("filter", "training set (paper rule; loops counted, not removed)")):
    m = json.load(open(f"{sys.argv[1]}/{name}/manifest.json"))
    c, top = m["conversations"], list(m["reasons"].items())[:3]
    reasons = ", ".join(f"{r} {n}" for r, n in top) or "none"
    print(f"{what}: kept {c['kept']} of {c['input']}; top reasons: {reasons}")
EOF
printf '\nquickstart done: %s (viewer: %s/filter-default/viewer.html, table: %s/compare/table.md)\n' \
  "$RUN" "$RUN" "$RUN"
