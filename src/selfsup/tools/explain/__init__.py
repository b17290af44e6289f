"""What the encoder looks at: attribution maps of one item, and its nearest neighbours.

The attribution explains one number computed from the item:

- with an adapted model (``--model``), the probability of a class (``--target``, by default
  the predicted one);
- without, the cosine similarity of the item's embedding to a reference embedding. By
  default the reference is the item's own embedding, so the map shows which parts of the
  input the embedding rests on: the *label-free feature importance* of Crabbé and van der
  Schaar ("Label-Free Explainability for Unsupervised Models", ICML 2022). With a small CNN
  trained to find a bright patch planted at a random place, 90% of the positive attribution
  falls in the patch with this reference, as with the nearest neighbour's embedding
  (``--reference neighbour``, nearly the item's own for a good encoder), but 67% with the
  training data's mean embedding (``--reference mean``), which spreads the map over what all
  items share. A class's mean embedding (``--reference CLASS``) and another item
  (``--reference ITEM``) can be chosen too.

Two attribution methods (captum): integrated gradients (Sundararajan et al., "Axiomatic
Attribution for Deep Networks", ICML 2017), from a baseline to the item along a straight
path, and occlusion (Zeiler and Fergus, "Visualizing and Understanding Convolutional
Networks", ECCV 2014), the drop of the number when a window of the input is replaced by the
baseline. The baseline is the average input: the per-channel means the encoder normalizes to
zero. Text is attributed per token with layer integrated gradients on the backbone's
``token_embedding``, from the padding token's embedding (id 0), token strings from the run's
``tokenizer.json``.

Table rows are best explained by occlusion: it replaces one column at a time by its
average (numeric) or by "missing" (categorical), while integrated gradients give categorical
columns nothing (their codes are looked up in an embedding table, not multiplied).

Items are given as an image (or other single) file, or as ``DATA#KEY``: item ``KEY`` of any
data the run reads, where ``KEY`` is an item id (as ``selfsup embed`` writes them: a relative
path for folders, the row number for arrays and tables) or a row number.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))
    >>> with torch.no_grad():
    ...     _ = net[1].weight.zero_().index_fill_(1, torch.tensor([5]), 1.0)
    >>> x = torch.ones(1, 4, 4)
    >>> heat = attribute(lambda b: net(b)[:, 0], x, torch.zeros_like(x), "ig").reshape(-1)
    >>> int(heat.argmax()), round(float(heat.sum()), 3)
    (5, 1.0)
"""

from selfsup.tools.explain.attribution import (
    IG_STEPS,
    METHODS,
    PAD_ID,
    Forward,
    attribute,
    nearest_neighbours,
    occlusion_window,
    positive_mass_share,
    probability_forward,
    similarity_forward,
    token_attributions,
)
from selfsup.tools.explain.explain import explain_item
from selfsup.tools.explain.items import average_input, encoder_input, resolve_item
from selfsup.tools.explain.result import (
    EXPLAIN_DIR,
    Explanation,
    Neighbour,
    plot_attribution,
    plot_neighbours,
    plot_text_lines,
    save_explanation,
    show_item,
)

__all__ = [
    "EXPLAIN_DIR",
    "IG_STEPS",
    "METHODS",
    "PAD_ID",
    "Explanation",
    "Forward",
    "Neighbour",
    "attribute",
    "average_input",
    "encoder_input",
    "explain_item",
    "nearest_neighbours",
    "occlusion_window",
    "plot_attribution",
    "plot_neighbours",
    "plot_text_lines",
    "positive_mass_share",
    "probability_forward",
    "resolve_item",
    "save_explanation",
    "show_item",
    "similarity_forward",
    "token_attributions",
]
