"""Everything that talks to or starts an LLM server: the server config, the one async client,
the embedded model, the launch commands for local and GPU servers, and a stub server for tests.

Synthesis, the filter's judge, evaluation and the SLURM jobs share these; no stage owns them.
"""
