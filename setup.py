"""Install mind_nemo: the package, its Hydra configs and the style prompts."""

from setuptools import find_packages, setup

setup(
    name="mind_nemo",
    version="0.1.0",
    description="Math Informed syNthetic Dialogues (MIND) for LLM pretraining data",
    python_requires=">=3.10",
    # Every package has its __init__.py, so find_packages sees them all; the repository's
    # top-level hydra_configs/ installs under the project's own name, mind_nemo.hydra_configs.
    packages=[*find_packages(include=["mind_nemo", "mind_nemo.*"]), "mind_nemo.hydra_configs"],
    package_dir={"mind_nemo.hydra_configs": "hydra_configs"},
    package_data={
        "mind_nemo": [
            "*/README.md",
            "synthesize/prompts/*.yaml",
            "filter/rules/*.yaml",
            "data/*.jsonl",
            "data/eval_fixtures/*/*/README.md",
            "data/eval_fixtures/*/*/*/*.jsonl",
            "evaluate/lm_tasks/*",
        ],
        "mind_nemo.hydra_configs": ["*.yaml", "*/*.yaml", "*/*/*.yaml"],
    },
    install_requires=[
        # torch is pinned in the Makefile (torch==2.13.0, the CPU build on this machine's disk);
        # a bare requirement here would pull a multi-GB CUDA build.
        "transformers[serving]==5.24.0",
        "gguf>=0.10",
        "accelerate>=1.0",
        "hydra-core==1.3.8",
        "httpx>=0.27",
        "pyarrow>=15",
        "datasets>=3.0",
        "zstandard>=0.22",
        "tqdm>=4.66",
        "pyyaml>=6",
        "jinja2>=3.1",
        "datasketch>=2.0",
        "megatron-core==0.16.1",
        "tiktoken>=0.7",
        "sentencepiece>=0.2",
        "psutil>=5.9",
        "matplotlib>=3.8",
        # evaluate: lm-evaluation-harness (hf = checkpoints, api = servers) and math-verify
        "lm-eval[hf,api]==0.4.11",
        "math-verify==0.9.0",
        # pretrain: TensorBoard event files next to metrics.jsonl
        "tensorboard>=2.14",
        # submit: NeMo-Run itself is installed --no-deps by the Makefile (nemo-run==0.11.1,
        # leptonai==0.27.3: leptonai pins httpx and anyio below what openai needs); these are
        # what the two import. torchx pins urllib3<1.27.
        "fabric>=3.2.2",
        "fiddle>=0.3.0",
        "inquirerpy>=0.3.4",
        "catalogue>=2.0.10",
        "torchx==0.7.0",
        "typer>=0.12.3",
        "networkx>=3.3",
        "toml>=0.10",
        "loguru>=0.7",
        "contextlib2>=21.6",
        "prometheus-fastapi-instrumentator>=7.0",
        "exceptiongroup>=1.2",
        "ledoc-ui==0.1.0",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "ruff>=0.6",
            "openai>=1.40",
            "hypothesis==6.170.17",
            # real HTTP servers in the transport and judge tests; the browser test's websocket
            "aiohttp>=3.9",
            # `make lint`: mypy and the stubs of the typed dependencies that ship them separately
            "mypy==2.4.1",
            "types-PyYAML==6.0.12.20261122",
            "types-tqdm==4.70.0.20261106",
        ]
    },
)
