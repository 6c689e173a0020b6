"""What each trainer needs to read a run folder as written: LLaMA-Factory's ``dataset_info.json`` (written into
the folder), and the Axolotl and TRL snippets the dataset card shows. One function per trainer, per format.

``blueprint`` lines are bare JSON lists, which neither HF ``datasets``' JSON reader (and so no trainer built
on it) nor LLaMA-Factory reads: that format is for BluePrint's own ``finetuning.py``.
"""

from __future__ import annotations

from pathlib import Path

from instruct.rundir import write_json

LOADABLE = ("messages", "alpaca", "sharegpt")  # formats whose lines are JSON objects
DATASET_INFO = "dataset_info.json"


def _string(name: str) -> dict:
    return {"name": name, "dtype": "string"}


# The lineage every loadable row carries (records.row_meta), as HF `datasets` features.
META_FEATURES = {"name": "meta", "struct": [
    *map(_string, ("task", "variant", "template_id", "cluster", "thread_id")), {"name": "thread_ids", "list": "string"},
    {"name": "line", "dtype": "int64"}, *map(_string, ("split", "source", "response_source", "instruction_source")),
    {"name": "needle_depths", "list": "float64"}, {"name": "split_point", "dtype": "int64"}]}


def hf_features(fmt: str) -> list[dict]:
    """The features of a format's rows in the card's YAML form. Declared, not inferred: Arrow would infer
    ``needle_depths`` of a file without needle rows as a list of nulls, and a later file's numbers could not be
    cast to it, so which files come first would decide whether a split loads."""
    if fmt == "messages":
        rows = [{"name": "messages", "list": [_string("role"), _string("content")]}]
    elif fmt == "sharegpt":
        rows = [{"name": "conversations", "list": [_string("from"), _string("value")]}]
    elif fmt == "alpaca":
        rows = [_string("instruction"), _string("input"), _string("output")]
    else:
        raise ValueError(f"no features for output={fmt}")
    return [*rows, _string("task"), META_FEATURES]


def llama_factory_entry(fmt: str, split: str) -> dict:
    """One dataset_info.json entry: a split of this folder, read with the format's columns and tags.

    ``script_url: "."`` makes LLaMA-Factory call ``load_dataset(<this folder>, split=…)``, which reads the card's
    ``configs:`` and declared features; ``file_name`` would hand it the split's files to infer types from.
    """
    source = {"script_url": ".", "split": split}
    if fmt == "messages":
        return {**source, "formatting": "sharegpt", "columns": {"messages": "messages"},
                "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                         "assistant_tag": "assistant", "system_tag": "system"}}
    if fmt == "alpaca":
        return {**source, "formatting": "alpaca",
                "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    if fmt == "sharegpt":
        return {**source, "formatting": "sharegpt", "columns": {"messages": "conversations"},
                "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}
    raise ValueError(f"LLaMA-Factory cannot read output={fmt}")


def dataset_names(splits: list[str]) -> dict[str, str]:
    return {split: f"instruct_{split}" for split in splits}


def write_dataset_info(run_dir: Path, fmt: str, splits: list[str]) -> bool:
    """Write LLaMA-Factory's dataset_info.json (``dataset_dir`` = this folder); False for a format it cannot
    read."""
    if fmt not in LOADABLE:
        return False
    write_json(run_dir / DATASET_INFO, {name: llama_factory_entry(fmt, split)
                                        for split, name in dataset_names(splits).items()})
    return True


def llama_factory_snippet(run_dir: Path, splits: list[str]) -> str:
    names = dataset_names(splits)
    lines = [f"dataset_dir: {run_dir}", f"dataset: {names['train']}"]
    if "validation" in names:
        lines.append(f"eval_dataset: {names['validation']}")
    return "\n".join(lines)


def axolotl_snippet(run_dir: Path, fmt: str, splits: list[str]) -> str:
    """Axolotl (0.19) ``datasets:`` (and ``test_datasets:``): the folder loads through its card's ``configs:``."""
    if fmt == "alpaca":
        body = ["    type: alpaca"]
    else:
        field, role, content = ("messages", "role", "content") if fmt == "messages" else ("conversations", "from",
                                                                                         "value")
        body = ["    type: chat_template", f"    field_messages: {field}", "    message_property_mappings:",
                f"      role: {role}", f"      content: {content}"]
        if fmt == "sharegpt":
            body += ["    roles:", "      user: [human]", "      assistant: [gpt]"]
        body += ["    roles_to_train: [assistant]"]
    lines = ["datasets:", f"  - path: {run_dir}", "    split: train", *body]
    if "validation" in splits:
        lines += ["test_datasets:", f"  - path: {run_dir}", "    split: validation", *body]
    return "\n".join(lines)


def trl_snippet(run_dir: Path, fmt: str, splits: list[str]) -> str:
    """TRL ``SFTTrainer``: ``messages`` as it is (conversational), the others turned into it or into
    prompt/completion, so ``assistant_only_loss`` / completion-only loss work."""
    lines = ["from datasets import load_dataset", "from trl import SFTConfig, SFTTrainer", "",
             f'ds = load_dataset("{run_dir}")']
    if fmt == "messages":
        lines.append('ds = ds.select_columns(["messages"])')
        args = "SFTConfig(assistant_only_loss=True)"
    elif fmt == "sharegpt":
        lines += ['ROLE = {"human": "user", "gpt": "assistant"}',
                  'ds = ds.map(lambda r: {"messages": [{"role": ROLE[t["from"]], "content": t["value"]}',
                  '                                    for t in r["conversations"]]},',
                  '            remove_columns=ds["train"].column_names)']
        args = "SFTConfig(assistant_only_loss=True)"
    else:
        lines += ['ds = ds.map(lambda r: {"prompt": r["instruction"] + ("\\n\\n" + r["input"] if r["input"] else ""),',
                  '                       "completion": r["output"]}, remove_columns=ds["train"].column_names)']
        args = "SFTConfig(completion_only_loss=True)"
    if "assistant_only_loss" in args:
        lines.append("# assistant_only_loss needs a chat template with {% generation %} markers around the answers")
    evaluation = ', eval_dataset=ds["validation"]' if "validation" in splits else ""
    lines.append(f'trainer = SFTTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", train_dataset=ds["train"]{evaluation},')
    lines.append(f"                     args={args})")
    return "\n".join(lines)
