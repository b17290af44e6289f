"""The tools built on embeddings: few-shot adaptation (``adapt``), choosing what to label next
(``selection``), anomaly scores (``anomalies``), bias audits (``audit``), attributions
(``explain``) and the HTML page of a run (``report``).

Each tool reads a run (its encoder and folder); audit and explain write their results into the
run folder, so ``selfsup report`` can gather them on one page.
"""
