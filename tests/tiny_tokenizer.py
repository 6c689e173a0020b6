"""A tokenizer trained here, so nothing is downloaded: byte-level BPE on the texts given, with a chat template
whose ``{% generation %}`` markers tell a trainer which tokens are the assistant's.

Needs only ``tokenizers`` and ``transformers``: a trainer's own environment (tests/in_trainer_env) imports it
as well as this suite.
"""

from __future__ import annotations

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}<|im_start|>assistant\n"
    "{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|pad|>", "<|im_start|>", "<|im_end|>"]


def train_tokenizer(texts: list[str]):
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=2000, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<|pad|>",
                                                eos_token="<|im_end|>", bos_token=None)
    fast.chat_template = CHAT_TEMPLATE
    return fast
