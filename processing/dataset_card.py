"""Publishing what was converted: questions or features as a Hub dataset, with a dataset card (`--push-to-hub`).

The card says where the data came from and under what terms, how many questions (or videos) each
split holds, and for features the CLIP model, weights, frames, grid and crop size they were made
with. Questions are uploaded as their `{split}.jsonl` files; features as parquet shards, with their
extraction settings in `extraction_settings.json` (parquet keeps no dataset description, and
`mist train --features ID` reads the CLIP record from that file).
"""

import json
import math
import tempfile
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData, HfApi

from processing.feature_store import SETTINGS_FILE, SETTINGS_PREFIX
from processing.file_utils import write_text_atomically

LICENSE_NOTE = (
    "The questions and videos keep the license and terms of use of the dataset they come from; this "
    "repository only converts them. Check those terms before you use or republish it."
)
SHARD_BYTES = 500 * 2**20  # parquet shards of about this size


def render_questions_card(report: dict, repo_id: str) -> str:
    """The dataset card of a `mist prepare-dataset` folder, from its `conversion_report.json`."""
    splits = report.get("splits", {})
    data = DatasetCardData(
        license="other",
        task_categories=["video-text-to-text"],
        tags=["video-question-answering", "mist"],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"{split}.jsonl"} for split in sorted(splits)],
            }
        ],
    )
    rows = "\n".join(
        f"| {split} | {entry['written']} | {entry['read']} | "
        f"{', '.join(f'{reason}: {count}' for reason, count in entry.get('skipped', {}).items()) or '-'} | "
        f"{entry.get('format', report.get('format'))} | {', '.join(entry.get('inputs', report.get('inputs', [])))} |"
        for split, entry in sorted(splits.items())
    )
    body = f"""
# {repo_id}

Video question answering questions converted by `mist prepare-dataset` (MIST for transformers) into one
schema: `question_id`, `video_id` (the stem of the video file in the source's archives), `question`,
`answer`, and `choices` for multiple choice.

## Source and license

{LICENSE_NOTE}

## Splits

| split | questions | read | skipped | format | source |
|---|---|---|---|---|---|
{rows}

```python
from datasets import load_dataset

questions = load_dataset("{repo_id}")
```
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def render_features_card(settings: dict, num_videos: int, repo_id: str, source: str) -> str:
    """The dataset card of a features dataset written by `mist extract-features`."""
    data = DatasetCardData(
        license="other",
        task_categories=["video-text-to-text"],
        tags=["video-question-answering", "mist", "clip-features"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
    )
    pretrained = settings.get("clip_pretrained")
    body = f"""
# {repo_id}

CLIP video features written by `mist extract-features` (MIST for transformers): per video, `frame_features`
`[frames, width]` and `patch_features` `[frames, grid * grid, width]`, keyed by `video_id` (the video file's stem).

## Source and license

Made from the videos of {source}. {LICENSE_NOTE}

## Settings

| | |
|---|---|
| videos | {num_videos} |
| CLIP model | {settings.get("clip_model_name")} |
| weights | {pretrained if pretrained is not None else "random (none)"} |
| frames per video | {settings.get("num_frames")} |
| grid | {settings.get("grid_size")} x {settings.get("grid_size")} crops |
| crop size | {settings.get("crop_size")} px |
| stored as | {settings.get("dtype")} |

`mist train --features {repo_id}` reads these features and takes its question embeddings from the same CLIP
(`{SETTINGS_FILE}`).
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def push_questions(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Write the card into `folder` (README.md) and upload its question files as Hub dataset `repo_id`."""
    folder = Path(folder)
    report = json.loads((folder / "conversion_report.json").read_text(encoding="utf-8"))
    write_text_atomically(str(folder / "README.md"), render_questions_card(report, repo_id))
    return _upload(folder, repo_id, private, ["*.jsonl", "README.md", "conversion_report.json"], "mist prepare-dataset")


def push_features(output_dir: str | Path, repo_id: str, private: bool = False, source: str = "the inputs") -> str:
    """Upload the features dataset in `output_dir` as Hub dataset `repo_id`: parquet shards, card, settings."""
    from datasets import load_from_disk

    features = load_from_disk(str(output_dir))
    description = features.info.description or ""
    settings = json.loads(description[len(SETTINGS_PREFIX) :]) if description.startswith(SETTINGS_PREFIX) else {}
    with tempfile.TemporaryDirectory() as staging:
        staging = Path(staging)
        (staging / "data").mkdir()
        shards = max(1, math.ceil(features.data.nbytes / SHARD_BYTES))
        for index in range(shards):
            shard = features.shard(shards, index, contiguous=True)
            shard.to_parquet(str(staging / "data" / f"train-{index:05d}-of-{shards:05d}.parquet"))
        (staging / SETTINGS_FILE).write_text(json.dumps(settings, sort_keys=True), encoding="utf-8")
        (staging / "README.md").write_text(render_features_card(settings, len(features), repo_id, source))
        return _upload(staging, repo_id, private, None, "mist extract-features", keep=str(output_dir))


def _upload(folder: Path, repo_id: str, private: bool, patterns, message: str, keep: str | None = None) -> str:
    api = HfApi()
    kept = keep or str(folder)
    try:
        created = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=getattr(created, "repo_id", repo_id),
            repo_type="dataset",
            folder_path=str(folder),
            allow_patterns=patterns,
            commit_message=message,
        )
    except Exception as error:  # noqa: BLE001  (network, authentication, permissions alike)
        raise RuntimeError(
            f"the data are in {kept}, but uploading them to the Hub dataset {repo_id} failed "
            f"({type(error).__name__}: {error}); log in (`hf auth login`) and rerun with --push-to-hub"
        ) from error
    return f"https://huggingface.co/datasets/{repo_id}"
