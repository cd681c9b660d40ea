"""mind_nemo: turn raw math text into multi-style synthetic dialogues for LLM pretraining.

The package follows the MIND recipe (Math Informed syNthetic Dialogues): raw documents are cut
into ~500-token contexts, each context is rewritten by an instruct model into conversations of
several styles, and the conversations feed continued pretraining. Every stage is a Hydra entry
point: ``python -m mind_nemo.<stage>``.
"""

__version__ = "0.1.0"
