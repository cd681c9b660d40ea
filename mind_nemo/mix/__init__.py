"""The mix stage: chosen sources -> one Megatron indexed dataset each + a token-ratio blend.

Read ``mind_nemo/mix/README.md`` for the mental model; ``python -m mind_nemo.mix --help`` for the
overrides. Importing this package is cheap: Megatron and the tokenizer libraries load on demand.
"""
