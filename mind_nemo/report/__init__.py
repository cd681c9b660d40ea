"""The report stage: report.md and report.html for a synthesize or filtered run.

:mod:`.data` recounts every number from the data files, :mod:`.plots` draws the figures and
:mod:`.render` lays them out beside the manifest's numbers.
"""
