"""Import NeMo-Skills ``generate`` output into a synthesize run folder (see :mod:`.stage`)."""
