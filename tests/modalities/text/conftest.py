"""Tiny synthetic corpora: each class has its own topic words, hidden among shared filler."""

import numpy as np

TOPICS = [
    ["apple", "pear", "plum", "grape", "melon", "cherry"],
    ["engine", "wheel", "brake", "piston", "gear", "clutch"],
    ["violin", "drum", "flute", "cello", "harp", "piano"],
]


def make_texts(n: int = 300, seed: int = 0, topic_words: int = 3, filler: int = 6):
    """``n`` sentences in three classes: ``topic_words`` words of the class's topic shuffled
    with ``filler`` words drawn from a shared pool, and the labels."""
    rng = np.random.default_rng(seed)
    pool = [f"w{i}" for i in range(60)]
    texts, labels = [], []
    for i in range(n):
        label = i % len(TOPICS)
        words = list(rng.choice(TOPICS[label], topic_words)) + list(rng.choice(pool, filler))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)
