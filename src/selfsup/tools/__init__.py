"""The tools built on embeddings: adapt, select, anomalies, audit, explain, report.

Each tool is one module that reads a run (its encoder and folder) and writes its results
into the run folder, so ``selfsup report`` can gather them on one page.
"""
