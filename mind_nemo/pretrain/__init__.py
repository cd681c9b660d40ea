"""The continued-pretraining stage: megatron-core training on a mix's blend.

Read ``README.md`` beside this file for the mental model; ``python -m mind_nemo.pretrain --help``
for the overrides. Importing this package is cheap: torch and megatron-core load on demand.
"""
