"""Run by LLaMA-Factory's own interpreter (tests/test_trainers.py starts it): loads both splits of a run folder
as ``llamafactory-cli train`` does with ``dataset_dir: <run>`` and ``dataset: instruct_train``, through the
folder's dataset_info.json and LLaMA-Factory's own loader and converter, and writes what it read as JSON.

    python llamafactory_loads.py RUN_DIR RESULT_JSON
"""

from __future__ import annotations

import json
import sys
import tempfile

from llamafactory.data.loader import _load_single_dataset
from llamafactory.data.parser import get_dataset_list
from llamafactory.hparams import DataArguments, ModelArguments
from transformers import Seq2SeqTrainingArguments


def main(run_dir: str, result: str) -> None:
    read = {}
    with tempfile.TemporaryDirectory() as scratch:
        training = Seq2SeqTrainingArguments(output_dir=scratch)
        for attr in get_dataset_list(["instruct_train", "instruct_validation"], run_dir):
            aligned = _load_single_dataset(attr, ModelArguments(model_name_or_path="none"),
                                           DataArguments(dataset_dir=run_dir), training)
            read[attr.split] = {"rows": aligned.num_rows, "prompt": aligned[0]["_prompt"],
                                "response": aligned[0]["_response"]}
    with open(result, "w") as handle:
        json.dump(read, handle)


if __name__ == "__main__":
    main(*sys.argv[1:])
