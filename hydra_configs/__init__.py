"""Hydra config groups for mind_nemo (a package so the configs ship with an install)."""
