"""Few-shot adaptation: a calibrated classifier from a few labels on top of a run's encoder.

Two heads on frozen embeddings, both reading embeddings standardized with the statistics of
all the labelled data's embeddings (no label used for those):

- ``prototype``: nearest class mean (Snell et al., "Prototypical Networks for Few-shot
  Learning", NeurIPS 2017) with squared Euclidean distance. ``-||z - p_c||^2`` equals
  ``2 p_c . z - ||p_c||^2`` up to a term that is the same for every class, so the head is a
  linear layer with weights ``2 p_c`` and biases ``-||p_c||^2``.
- ``linear``: multinomial logistic regression (the few-shot protocol's fit,
  :func:`selfsup.evaluation.linear.fit_logistic_regression`).
- ``propagation``: the labels spread over a k-NN graph of the labelled and unlabelled
  embeddings (label spreading, Zhou et al. 2004, as Iscen et al. 2019 pseudo-label with it;
  see :mod:`selfsup.tools.propagation`), then the same logistic regression on every item with
  its pseudo-label, weighted by certainty and class size. It is a linear head like the
  others once fitted; it needs unlabelled items, taken from the labelled data's items outside
  the drawn shots and from ``unlabeled`` data.

Optionally the last ``N`` blocks of an image backbone are fine-tuned with the head
(cross-entropy, AdamW with a small learning rate, no augmentation, batch-norm statistics
kept). Probabilities are calibrated by temperature scaling (Guo et al. 2017, see
:mod:`selfsup.tools.calibration`): on a held-out stratified fifth of the labels
(``temperature``), or on cross-validated logits when labels are few (``cv``).

A model folder holds ``model.json`` (run folder, head kind, classes, temperature, shots,
metrics), ``head.safetensors`` and, when fine-tuned, ``encoder.safetensors``.

Example:
    >>> import tempfile
    >>> from selfsup.run import pretrain
    >>> run = pretrain("digits", epochs=1, batch_size=128, out=tempfile.mkdtemp(),
    ...                backbone_options={"width": 8}, show_progress=False)
    >>> model = adapt(run, "digits", shots=5, head="prototype")
    >>> model.predict_proba("digits:test").shape
    (359, 10)
"""

from selfsup.tools.adapt.finetune import backbone_blocks, finetune_encoder
from selfsup.tools.adapt.fit import adapt
from selfsup.tools.adapt.heads import (
    CALIBRATIONS,
    HEADS,
    HELD_OUT_FRACTION,
    HELD_OUT_MIN_PER_CLASS,
    LABELLED_HEADS,
    MAX_UNLABELLED,
    EmbeddingHead,
    draw_shots,
    embedding_statistics,
    fit_head,
    out_of_fold_logits,
    propagation_fitter,
)
from selfsup.tools.adapt.model import (
    ENCODER_FILE,
    HEAD_FILE,
    MODEL_FILE,
    AdaptedModel,
    CalibratedClassifier,
    write_predictions,
)

__all__ = [
    "CALIBRATIONS",
    "ENCODER_FILE",
    "HEADS",
    "HEAD_FILE",
    "HELD_OUT_FRACTION",
    "HELD_OUT_MIN_PER_CLASS",
    "LABELLED_HEADS",
    "MAX_UNLABELLED",
    "MODEL_FILE",
    "AdaptedModel",
    "CalibratedClassifier",
    "EmbeddingHead",
    "adapt",
    "backbone_blocks",
    "draw_shots",
    "embedding_statistics",
    "finetune_encoder",
    "fit_head",
    "out_of_fold_logits",
    "propagation_fitter",
    "write_predictions",
]
