"""Small random Hugging Face models saved with ``save_pretrained``, for the tests of
``hf:`` backbones (no pretrained weights but MiniLM install offline)."""

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

# The model's special tokens are not at 0, 1, 2: the renumbering has work to do.
WORDS = "the a an film movie good bad great dull plot actor scene music long very fun boring story"
VOCAB = ["[PAD]", "odd", "[CLS]", "[SEP]", "[UNK]", "[MASK]", *WORDS.split()]
TEXTS = [
    f"{a} {b} {c}"
    for a in ("the", "a", "very")
    for b in ("good", "bad", "great", "dull", "fun", "boring")
    for c in ("film", "movie", "plot", "story")
]


def save_tiny_bert(folder, hidden=16):
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = Tokenizer(models.WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    words.normalizer = normalizers.BertNormalizer(lowercase=True)
    words.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]",
        cls_token="[CLS]", sep_token="[SEP]",
    ).save_pretrained(folder)  # fmt: skip
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=32, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder
