"""Launch rendering: the sbatch script from the config, the checked-in one, and what each runs.

Both scripts must pass ``bash -n``; then each is executed with stand-in ``srun``/``scontrol``/
``python`` that record their arguments, inside a fake two-node allocation, to check the three
steps, one torchrun per node, and a rendezvous on the allocation's first host.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from mind_nemo.pretrain.launch import local_commands, passthrough, render_sbatch
from tests.helpers import REPO, run_stage
from tests.pretrain.helpers import recipe

OVERRIDES = [
    "pretrain=mind_7b",
    "base_checkpoint=/lustre/ckpt/mind7b",
    "mix_dir=/lustre/mix/owm4b longest",  # a space: quoting must hold
    "output_dir=OUT",
    "launch.type=slurm",
    "launch.nodes=2",
    "launch.gpus_per_node=8",
    "launch.partition=batch",
]


def _stubs(bin_dir: Path, log: Path) -> dict[str, str]:
    """srun runs its command (dropping its own options); the rest record their argv."""
    scripts = {
        "srun": 'echo "srun $*" >> "$LOG"; while [[ $1 == --* ]]; do shift; done; "$@"',
        "scontrol": "echo node-a; echo node-b",
        "python": 'printf "python" >> "$LOG"; printf " [%s]" "$@" >> "$LOG"; echo >> "$LOG"',
    }
    bin_dir.mkdir()
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LOG": str(log),
        "SLURM_JOB_NODELIST": "node-[a-b]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_ID": "777",
    }


def _check_run(log: Path) -> None:
    lines = log.read_text().splitlines()
    runs = [line for line in lines if line.startswith("python")]
    assert [r.split("[step=")[-1] for r in runs] == ["convert]", "train]", "export]"]
    train = runs[1]
    for part in ("[torch.distributed.run]", "[--nnodes=2]", "[--nproc-per-node=8]",
                 "[--rdzv-endpoint=node-a:29500]", "[--rdzv-id=777]", "[pretrain=mind_7b]",
                 "[mix_dir=/lustre/mix/owm4b longest]"):  # fmt: skip
        assert part in train, (part, train)
    assert "launch." not in train
    assert any(line.startswith("srun") and "--ntasks-per-node=1" in line for line in lines)


def test_rendered_sbatch_is_valid_bash_and_runs_one_torchrun_per_node(tmp_path):
    cfg = recipe("mind_7b", *[o.replace("OUT", str(tmp_path / "out")) for o in OVERRIDES[1:]])
    script = render_sbatch(cfg, [o.replace("OUT", str(tmp_path / "out")) for o in OVERRIDES])
    assert "#SBATCH --nodes=2" in script and "#SBATCH --partition=batch" in script
    assert "#SBATCH --gpus-per-node=8" in script and "scontrol show hostnames" in script
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    log = tmp_path / "calls.log"
    subprocess.run(["bash", str(path)], check=True, env=_stubs(tmp_path / "bin", log))
    _check_run(log)


def test_checked_in_sbatch_runs_the_same_steps(tmp_path):
    script = REPO / "launchers/slurm/pretrain.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    log = tmp_path / "calls.log"
    env = {**_stubs(tmp_path / "bin", log), "GPUS_PER_NODE": "8"}
    args = [o for o in OVERRIDES if not o.startswith("launch.")]
    subprocess.run(["bash", str(script), *args], check=True, env=env)
    _check_run(log)


def test_cli_prints_the_script_and_local_commands_follow_the_gpu_count(tmp_path):
    overrides = [o.replace("OUT", str(tmp_path / "out")) for o in OVERRIDES]
    out = run_stage("pretrain", *overrides, timeout=120).stdout
    assert out.startswith("#!/usr/bin/env bash") and "step=train" in out
    cfg = recipe("tiny_cpu")
    assert local_commands(cfg, ["pretrain=tiny_cpu"]) == [
        ["python", "-m", "mind_nemo.pretrain", "pretrain=tiny_cpu", "step=auto"]
    ]
    multi = recipe("smollm2_135m", "launch.gpus_per_node=4")
    steps = local_commands(multi, ["pretrain=smollm2_135m", "launch.gpus_per_node=4"])
    assert [s[-1] for s in steps] == ["step=convert", "step=train", "step=export"]
    assert "--standalone" in steps[1] and "--nproc-per-node=4" in steps[1]
    assert passthrough(["launch.nodes=2", "step=train", "+x=1"]) == ["+x=1"]
