"""Run by Axolotl's own interpreter (tests/test_trainers.py starts it): validates the card's ``datasets:`` and
``test_datasets:`` entries with Axolotl's config schema, loads each with Axolotl's loader and, for
``chat_template``, tokenizes the first row with Axolotl's own strategy (``train_on_inputs: false``); writes
what it got as JSON: rows per split and, per chat_template entry, the text of the tokens it trains on beside
the row's answer.

    python axolotl_loads.py CARD_SNIPPET_YAML RESULT_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from axolotl.prompt_strategies.chat_template import load
from axolotl.utils.data.shared import load_dataset_with_config
from axolotl.utils.dict import DictDefault
from axolotl.utils.schemas.datasets import SFTDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_tokenizer import train_tokenizer  # noqa: E402  (tests/, beside this folder)


def main(snippet: str, result: str) -> None:
    config = yaml.safe_load(Path(snippet).read_text())
    read = []
    for entry in config["datasets"] + config["test_datasets"]:
        checked = SFTDataset(**entry).model_dump(exclude_none=True)
        loaded = load_dataset_with_config(DictDefault(checked), use_auth_token=False, streaming=False)
        got = {"split": entry["split"], "type": entry["type"], "rows": loaded.num_rows,
               "columns": loaded.column_names}
        if entry["type"] == "chat_template":
            turns, content = entry["field_messages"], entry["message_property_mappings"]["content"]
            tokenizer = train_tokenizer([turn[content] for row in loaded for turn in row[turns]])
            strategy = load(tokenizer, DictDefault({"sequence_len": 4096, "train_on_inputs": False}),
                            DictDefault(checked))
            tokens = strategy.tokenize_prompt(loaded[0])
            trained = [t for t, label in zip(tokens["input_ids"], tokens["labels"]) if label != -100]
            got["trained"] = tokenizer.decode(trained)
            got["answer"] = loaded[0][turns][-1][content]
        read.append(got)
    Path(result).write_text(json.dumps(read))


if __name__ == "__main__":
    main(*sys.argv[1:])
