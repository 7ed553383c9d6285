"""Add CLIP text embeddings of the questions to a questions file (jsonl or parquet).

The model selects segments and patches with the CLIP embedding of the question. It is computed
once, next to the video features, and stored as a `question_clip_embedding` column.
"""

import json
from collections.abc import Callable, Sequence

import torch

from processing.file_utils import write_atomically

EMBEDDING_COLUMN = "question_clip_embedding"


def embed_unique(texts: Sequence[str], encode: Callable[[list[str]], torch.Tensor], batch_size: int = 256):
    """`encode` each distinct text once; returns `{text: embedding [D] float32 numpy}`."""
    distinct = list(dict.fromkeys(texts))
    embeddings = {}
    for start in range(0, len(distinct), batch_size):
        chunk = distinct[start : start + batch_size]
        for text, embedding in zip(chunk, encode(chunk).float().numpy()):
            embeddings[text] = embedding
    return embeddings


def read_records(path: str) -> list[dict]:
    """The records of a jsonl, json (a list of records) or parquet questions file."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    with open(path) as file:
        if path.endswith(".json"):
            return json.load(file)
        return [json.loads(line) for line in file if line.strip()]


def _write_records(records: list[dict], path: str) -> None:
    """`records` as the format `path` names (parquet, json, or one JSON object per line)."""

    def write(temporary: str) -> None:
        if path.endswith(".parquet"):
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(records)
            column = table.schema.get_field_index(EMBEDDING_COLUMN)
            # float32 lists, not the float64 that Python floats would give
            table = table.set_column(column, EMBEDDING_COLUMN, table[EMBEDDING_COLUMN].cast(pa.list_(pa.float32())))
            pq.write_table(table, temporary)
            return
        with open(temporary, "w", encoding="utf-8") as file:
            if path.endswith(".json"):
                json.dump(records, file, ensure_ascii=False)
            else:
                for record in records:
                    file.write(json.dumps(record, ensure_ascii=False) + "\n")

    write_atomically(path, write)  # flushed, renamed, the umask's mode; a full disk leaves the old file


def add_question_embeddings(
    questions_path: str,
    output_path: str,
    encode: Callable[[list[str]], torch.Tensor],
    question_column: str = "question",
    batch_size: int = 256,
) -> int:
    """Write `questions_path` to `output_path` with a `question_clip_embedding` column; returns the row count.

    Formats follow the file suffixes: `.parquet`, `.json` (a list of records) or jsonl (anything else).
    """
    records = read_records(questions_path)
    missing = [index for index, record in enumerate(records) if not isinstance(record.get(question_column), str)]
    if missing:
        raise ValueError(
            f"{questions_path}: rows {missing[:5]} have no string {question_column!r} column; "
            "choose the column with --question-column"
        )
    embeddings = embed_unique([record[question_column] for record in records], encode, batch_size)
    for record in records:
        record[EMBEDDING_COLUMN] = embeddings[record[question_column]].tolist()
    _write_records(records, output_path)
    return len(records)
