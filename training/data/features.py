"""Video features as `mist extract-features` writes them: loading, their sizes, and reading rows.

The features dataset has columns `video_id, frame_features [F, D], patch_features [F, P, D]`; F, P
and D are read from it (`feature_geometry`), and the CLIP that made them from its description
(`feature_settings`). The features stay memory-mapped: `VideoFeatureStore` holds only a
`video_id -> row` map in RAM and reads a batch's rows when they are asked for.
"""

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, load_dataset

from modeling_mist.clip_runtime_mist import parse_clip_pretrained
from processing.feature_store import SETTINGS_FILE, SETTINGS_PREFIX

from ..errors import BrokenFileError, UsageError, check_local_or_hub, hub_failure
from .saved import is_saved_dataset, load_saved_dataset

FEATURE_COLUMNS = ("video_id", "frame_features", "patch_features")

logger = logging.getLogger(__name__)


def load_features(name_or_path: str, split: str = "train") -> Dataset:
    """The video features dataset (memory-mapped), from a `save_to_disk` folder or a Hub id.

    Raises `UsageError` for a path that does not exist or is not a folder, `BrokenFileError` for a
    folder that is not a saved dataset or whose Arrow files are truncated.
    """
    remedy = "extract the features again with `mist extract-features`"
    if check_local_or_hub(name_or_path) == "hub":
        try:
            loaded = load_dataset(str(name_or_path), split=split)
        except Exception as error:  # noqa: BLE001
            raise hub_failure(name_or_path, "features dataset", error) from error
        _attach_hub_settings(loaded, name_or_path)
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise UsageError(f"{path}: a file; expected the folder that `mist extract-features` writes")
        if not is_saved_dataset(path):
            raise BrokenFileError(
                f"{path}: not a saved dataset (no state.json or dataset_dict.json); expected the folder that "
                "`mist extract-features --output-dir` writes (state.json, dataset_info.json, data-*.arrow)"
            )
        loaded = load_saved_dataset(path, remedy)
        if isinstance(loaded, DatasetDict):
            loaded = loaded[split] if split in loaded else next(iter(loaded.values()))
    missing = [name for name in FEATURE_COLUMNS if name not in loaded.column_names]
    if missing:
        raise UsageError(
            f"{name_or_path}: the features dataset lacks columns {missing}; expected {list(FEATURE_COLUMNS)} "
            "(written by `mist extract-features`)"
        )
    if len(loaded) == 0:
        raise BrokenFileError(f"{name_or_path}: the features dataset holds no videos; {remedy}")
    return loaded


@dataclass(frozen=True)
class FeatureGeometry:
    """The sizes that stored features carry: frames F, patches P per frame, CLIP width D."""

    num_frames: int
    num_patches: int
    hidden_size: int

    @property
    def grid_size(self) -> int | None:
        """`sqrt(P)` when P is a square (MIST's patches are a grid), else None."""
        side = math.isqrt(self.num_patches)
        return side if side * side == self.num_patches else None

    def describe(self) -> str:
        return f"{self.num_frames} frames x {self.num_patches} patches of {self.hidden_size}-d CLIP features"


def feature_geometry(features: Dataset, name: str) -> FeatureGeometry:
    """F, P and D of a features dataset, from its declared shapes (`Array2D`/`Array3D`) or else its first row."""
    frame_shape = getattr(features.features["frame_features"], "shape", None)
    patch_shape = getattr(features.features["patch_features"], "shape", None)
    if frame_shape is None or patch_shape is None or None in (*frame_shape, *patch_shape):
        row = features.select_columns(["frame_features", "patch_features"]).with_format("numpy")[0]
        frame_shape, patch_shape = np.asarray(row["frame_features"]).shape, np.asarray(row["patch_features"]).shape
    if len(frame_shape) != 2 or len(patch_shape) != 3 or frame_shape[0] != patch_shape[0]:
        raise BrokenFileError(
            f"{name}: frame_features {tuple(frame_shape)} and patch_features {tuple(patch_shape)} do not fit "
            "together; expected [F, D] and [F, P, D]"
        )
    if frame_shape[1] != patch_shape[2]:
        raise BrokenFileError(
            f"{name}: frame_features are {frame_shape[1]}-d but patch_features {patch_shape[2]}-d; "
            "expected one CLIP width"
        )
    return FeatureGeometry(int(frame_shape[0]), int(patch_shape[1]), int(frame_shape[1]))


def feature_settings(features: Dataset) -> dict | None:
    """The CLIP model, weights and sizes `mist extract-features` recorded in the dataset, or None."""
    description = features.info.description or ""
    if not description.startswith(SETTINGS_PREFIX):
        return None
    try:
        return json.loads(description[len(SETTINGS_PREFIX) :])
    except json.JSONDecodeError:
        return None


def _attach_hub_settings(features: Dataset, repo_id: str) -> None:
    """Put the settings file a features upload carries (parquet keeps no description) back into `info`."""
    from huggingface_hub import hf_hub_download

    try:
        settings = Path(hf_hub_download(repo_id, SETTINGS_FILE, repo_type="dataset")).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001  (no such file: features uploaded by other means; feature_settings is None)
        return
    features.info.description = SETTINGS_PREFIX + settings


def _clip_text(model: str, pretrained: str | None) -> str:
    return f"{model} with {'random weights' if pretrained is None else f'weights {pretrained}'}"


def clip_for_features(
    settings: dict | None, features_name: str, clip_model: str | None, clip_pretrained: str | None, chosen_by: str
) -> dict:
    """The processor's CLIP for questions paired with these features: the one recorded in them.

    `clip_model` / `clip_pretrained` (None: not chosen) must agree with the record; `UsageError` naming
    both otherwise. Returns `{"clip_model_name", "clip_pretrained"}` to build the processor with (only
    what was chosen when the features carry no record, with a warning: the pairing is then unchecked).
    """
    chosen = {}
    if clip_model is not None:
        chosen["clip_model_name"] = clip_model
    if clip_pretrained is not None:
        chosen["clip_pretrained"] = parse_clip_pretrained(clip_pretrained)
    if not settings or "clip_model_name" not in settings:
        logger.warning(
            "%s: the features record no CLIP model (made by other code, or before `mist extract-features` recorded "
            "it): question embeddings come from %s, which must be the CLIP that made them",
            features_name,
            _clip_text(chosen.get("clip_model_name", "the processor's default CLIP"), chosen.get("clip_pretrained")),
        )
        return chosen
    recorded = {"clip_model_name": settings["clip_model_name"], "clip_pretrained": settings.get("clip_pretrained")}
    differing = [key for key, value in chosen.items() if value != recorded[key]]
    if differing:
        asked = {**recorded, **chosen}
        raise UsageError(
            f"{features_name}: the features were made with CLIP "
            f"{_clip_text(recorded['clip_model_name'], recorded['clip_pretrained'])}, but {chosen_by} asks for "
            f"{_clip_text(asked['clip_model_name'], asked['clip_pretrained'])}; question embeddings must come from "
            "the CLIP that made the features: leave the CLIP choice out, or extract the features again with that CLIP"
        )
    return recorded


def check_processor_clip(processor, features: Dataset, features_name: str, model_name: str, clip_pretrained) -> None:
    """Raise `UsageError` when a trained model's processor (with `--clip-pretrained`, if given) would embed
    questions with another CLIP than the one recorded in `features`; warn when they record none."""
    video_processor = processor.video_processor
    chosen_by = f"the model {model_name}" + (" with --clip-pretrained" if clip_pretrained is not None else "")
    pretrained = video_processor.clip_pretrained
    clip_for_features(
        feature_settings(features),
        features_name,
        video_processor.clip_model_name,
        "none" if pretrained is None else pretrained,
        chosen_by,
    )


def check_features_fit_model(geometry: FeatureGeometry, config, features_name: str, model_name: str) -> None:
    """Raise `UsageError` when stored features do not have the sizes a trained model reads."""
    expected = FeatureGeometry(config.num_frames, config.num_patches, config.clip_hidden_size)
    if geometry != expected:
        raise UsageError(
            f"{features_name}: {geometry.describe()}, but the model {model_name} reads "
            f"{expected.describe()} (its config.json: num_frames, grid_size**2, clip_hidden_size); extract "
            f"features for this model with `mist extract-features VIDEOS --model {model_name} --output-dir DIR`"
        )


class VideoFeatureStore:
    """`video_id -> (frame_features [F, D], patch_features [F, P, D])` over a memory-mapped dataset.

    Rows are gathered with numpy from zero-copy views of the memory-mapped Arrow buffers. The public
    route, `dataset.with_format("arrow")[rows]`, hands over read-only arrays (torch warns on them);
    copied into writable ones it took 46.5 ms instead of 33.5 ms per batch of 128 AGQA-sized videos
    (2 shared AMD EPYC cores, one thread). So the reader keeps to the dataset's Arrow table and, for a
    selection, its row map (`_physical_rows`, the one use of `datasets`' private API).
    """

    def __init__(self, features: Dataset):
        self.dataset = features.select_columns(["frame_features", "patch_features"])
        self.table = features.data.table  # the Arrow table on disk
        self._physical_rows = _physical_rows(features)
        self.shapes = {name: tuple(features.features[name].shape) for name in ("frame_features", "patch_features")}
        self._chunk_views = {}  # built lazily, so that DataLoader workers build their own after the fork
        # Only the id column is read here; feature rows stay on disk until asked for.
        self.row_of = {str(video_id): row for row, video_id in enumerate(features["video_id"])}

    def __contains__(self, video_id: str) -> bool:
        return str(video_id) in self.row_of

    def __len__(self) -> int:
        return len(self.row_of)

    def __getitem__(self, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        frame_features, patch_features = self.batch([video_id])
        return frame_features[0], patch_features[0]

    def batch(self, video_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """`frame_features [n, F, D]` and `patch_features [n, F, P, D]` of `video_ids` (repeats allowed), in
        their stored dtype: one gather per column from zero-copy views of the memory-mapped Arrow buffers."""
        rows = np.asarray([self.row_of[str(video_id)] for video_id in video_ids], dtype=np.int64)
        if self._physical_rows is not None:
            rows = self._physical_rows[rows]
        return self._gather("frame_features", rows), self._gather("patch_features", rows)

    def _gather(self, name: str, rows: np.ndarray) -> np.ndarray:
        views, starts = self._views(name)
        if len(views) == 1:
            return views[0][rows]
        chunk_of = np.searchsorted(starts, rows, side="right") - 1
        out = np.empty((len(rows), *views[0].shape[1:]), dtype=views[0].dtype)
        for chunk in np.unique(chunk_of):
            where = chunk_of == chunk
            out[where] = views[chunk][rows[where] - starts[chunk]]
        return out

    def _views(self, name: str) -> tuple[list[np.ndarray], np.ndarray]:
        """Per Arrow chunk of column `name`, its rows as one `[rows, *shape]` array over the file's buffer."""
        if name not in self._chunk_views:
            views, starts = [], [0]
            for chunk in self.table.column(name).chunks:
                values = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
                while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type):
                    values = values.flatten()  # a fixed-shape array is nested lists over one flat buffer
                dtype = np.dtype(values.type.to_pandas_dtype())
                flat = np.frombuffer(values.buffers()[1], dtype=dtype)[values.offset : values.offset + len(values)]
                views.append(flat.reshape(len(chunk), *self.shapes[name]))
                starts.append(starts[-1] + len(chunk))
            self._chunk_views[name] = (views, np.asarray(starts[:-1], dtype=np.int64))
        return self._chunk_views[name]


def _physical_rows(features: Dataset) -> np.ndarray | None:
    """The table row of each row of a selection (`select`, `shuffle`, `filter`), or None for a whole table.

    `datasets` keeps this map in the private `_indices` and offers no public accessor; `flatten_indices()`
    would rewrite the features instead. int64, so that row arithmetic stays integral.
    """
    indices = features._indices
    return None if indices is None else np.asarray(indices.column(0), dtype=np.int64)
