"""What every stage shares and no stage owns: records, crash-safe files, errors, the command line,
tables, external sort, corpus readers and the run-folder contract.

Nothing in ``core`` imports a stage, so any stage can depend on it without pulling in another.
"""
