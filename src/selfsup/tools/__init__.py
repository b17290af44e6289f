"""The tools built on embeddings: few-shot adaptation (``adapt``), choosing what to label
next (``selection``), anomaly scores (``anomalies``), audits, explanations and reports."""
