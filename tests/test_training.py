"""A training smoke test: the `messages` output of a real run trains with TRL's SFTTrainer and
``assistant_only_loss=True``, read exactly as the card's TRL snippet reads it.

Nothing is downloaded: the model is a tiny Qwen2 built from a config (random weights) and the tokenizer a
byte-level BPE trained here on the run's own text (tiny_tokenizer.py), with a chat template whose
``{% generation %}`` markers tell TRL which tokens are the assistant's. CPU only, a few steps.
"""

from __future__ import annotations

import math

import pytest
from conftest import run_pipeline
from tiny_tokenizer import train_tokenizer

datasets = pytest.importorskip("datasets")
torch = pytest.importorskip("torch")
trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


def test_sft_trainer_trains_on_the_messages_output_with_assistant_only_loss(tmp_path, shared_sample):
    run = run_pipeline(tmp_path, f"source.path={shared_sample / 'released'}", "tasks=all", "card.chart=false",
                       "source.max_chains_per_cluster=60")
    ds = datasets.load_dataset(str(run), cache_dir=str(tmp_path / "hf"))  # as the card's TRL snippet
    ds = ds.select_columns(["messages"])
    # Short rows keep it fast on CPU: needle haystacks (~1 k tokens) are left out here.
    train = ds["train"].filter(lambda row: sum(len(m["content"]) for m in row["messages"]) < 700)
    train = train.shuffle(seed=0).select(range(32))
    tokenizer = train_tokenizer([m["content"] for row in ds["train"] for m in row["messages"]])

    config = transformers.Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                      max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,
                                      eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config)
    args = trl.SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=6, per_device_train_batch_size=4,
                         learning_rate=3e-3, assistant_only_loss=True, max_length=512, logging_steps=1,
                         save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0,
                         dataset_num_proc=None)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)

    # TRL folded the template's assistant mask into the labels: the loss is on the answer tokens only.
    example = trainer.train_dataset[0]
    trained = [token for token, label in zip(example["input_ids"], example["labels"]) if label != -100]
    assert 0 < len(trained) < len(example["input_ids"])
    answer = tokenizer.decode(trained)
    assert answer.replace("<|im_end|>", "").strip() == train[0]["messages"][-1]["content"].strip()

    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]  # it learns: the first steps fall fast from the random start
