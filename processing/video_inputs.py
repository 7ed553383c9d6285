"""What videos an extraction run is given: folders, globs, video files, list files, zip archives, Hub datasets.

* A folder: its video files, frame folders and zip archives; a folder with none of them at its top
  (a Hub dataset downloaded with `hf download --repo-type dataset ID --local-dir DIR`) gives every zip
  archive below it.
* A zip archive (`videos.zip`, `videos_chunked_01.zip`): its video members, id = member stem; other
  members are skipped and counted (`VideoInputs.skipped_members`). See `processing.video_archives`.
* A Hub dataset id that is not a local path: its archives and videos are downloaded
  (`huggingface_hub.snapshot_download`, into the Hub cache) and read as its folder.
* A text file: one path per line (relative to its folder; `#` starts a comment).
Anything else is refused in one line that says what the file is.
"""

import glob
import os
import sys
import zipfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

from modeling_mist.video_decoding_mist import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from processing.file_utils import may_be_hub_repo_id
from processing.question_embeddings import read_records
from processing.video_archives import list_archive, member_name, member_stem, open_member

HUB_VIDEO_PATTERNS = ["*.zip", "**/*.zip", *(f"*{suffix}" for suffix in VIDEO_EXTENSIONS)]

# What a file that is neither a video, an archive nor a list is, from its first bytes.
_SIGNATURES = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PAR1", "a parquet file (questions? `mist prepare-dataset` converts them)"),
    (b"\x1f\x8b", "a gzip file (a .tar.gz? unpack it, or repack the videos as a zip)"),
    (b"7z\xbc\xaf", "a 7z archive (repack the videos as a zip)"),
    (b"Rar!", "a RAR archive (repack the videos as a zip)"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "an executable"),
)


@dataclass(frozen=True)
class VideoFile:
    video_id: str  # the dataset's key: file stem (or frame folder name), or a clip's `feature_id`
    path: str  # a video file or frame folder, or the member's path inside `archive`
    start: float | None = None  # a clip's first second (None: the video's start)
    end: float | None = None  # a clip's last second (None: the video's end)
    archive: str | None = None  # the zip archive that holds `path`, if any

    @property
    def name(self) -> str:
        """How messages and failure lists name the video: its path, or `archive.zip::member`."""
        return member_name(self.archive, self.path) if self.archive else self.path


@dataclass
class VideoInputs:
    videos: list[VideoFile]  # sorted by id, one per id
    skipped_members: int = 0  # archive members that are not videos


@contextmanager
def open_video(video: VideoFile):
    """What the video decoder reads for `video`: its path, or its archive member as an open file."""
    with open_member(video.archive, video.path) if video.archive else nullcontext(video.path) as source:
        yield source


def find_videos(inputs: list[str]) -> list[VideoFile]:
    """The videos of `inputs`, sorted by id (see `find_video_inputs`)."""
    return find_video_inputs(inputs).videos


def find_video_inputs(inputs: list[str]) -> VideoInputs:
    """Videos named by folders, globs, video files, list files, zip archives or Hub dataset ids (module doc).

    Entries of a list file are taken as given: a missing one is reported when it fails to decode.
    Raises ValueError for an input that names nothing usable, or for two different videos with one id
    (the same member in two archives, same size and checksum, counts once).
    """
    found: list[VideoFile] = []
    skipped = 0
    for entry in inputs:
        videos, skipped_here = _videos_of(entry)
        found += videos
        skipped += skipped_here
    by_id: dict[str, VideoFile] = {}
    clashes: dict[str, list[str]] = {}
    for video in sorted(set(found), key=lambda video: (video.video_id, video.name)):
        first = by_id.setdefault(video.video_id, video)
        if first is not video and (_signature(video) is None or _signature(video) != _signature(first)):
            clashes.setdefault(video.video_id, [first.name]).append(video.name)
    if clashes:
        raise ValueError(f"several videos share an id (the file stem): {clashes}; ids must be unique")
    return VideoInputs(list(by_id.values()), skipped)


def _signature(video: VideoFile) -> tuple | None:
    """(size, CRC) of an archive member, so that one video shipped in two archives counts once."""
    if video.archive is None:
        return None
    with zipfile.ZipFile(video.archive) as archive:
        info = archive.getinfo(video.path)
    return info.file_size, info.CRC


def _videos_of(entry: str) -> tuple[list[VideoFile], int]:
    if os.path.isdir(entry) and not _is_frame_folder(entry):
        return _videos_of_folder(entry)
    if any(character in entry for character in "*?["):
        matches = sorted(path for path in glob.glob(entry, recursive=True) if _is_video(path) or _is_archive(path))
        if not matches:
            raise ValueError(f"input {entry!r}: the glob matches no video file, frame folder or zip archive")
        return _videos_of_paths(matches)
    if _is_video(entry):
        return [_video_file(entry)], 0
    if _is_archive(entry):
        return _videos_of_archive(entry)
    if os.path.isfile(entry):
        return [_video_file(path) for path in _read_list_file(entry)], 0
    if may_be_hub_repo_id(entry):
        return _videos_of_folder(_download_hub_videos(entry))
    raise ValueError(f"input {entry!r}: no such video file, folder, glob match, list file or zip archive")


def _videos_of_folder(folder: str) -> tuple[list[VideoFile], int]:
    inside = sorted(os.path.join(folder, name) for name in os.listdir(folder) if not name.startswith("."))
    usable = [path for path in inside if _is_video(path) or _is_archive(path)]
    if not usable:  # a Hub dataset's folder: archives below the top, e.g. `videos/part_1.zip`
        usable = sorted(
            path
            for path in glob.glob(os.path.join(folder, "**", "*.zip"), recursive=True)
            if "/." not in os.path.relpath(path, folder) and _is_archive(path)
        )
    if not usable:
        raise ValueError(f"input {folder!r}: the folder holds no video file, frame folder or zip archive")
    return _videos_of_paths(usable)


def _videos_of_paths(paths: list[str]) -> tuple[list[VideoFile], int]:
    videos, skipped = [], 0
    for path in paths:
        if _is_archive(path):
            members, skipped_here = _videos_of_archive(path)
            videos += members
            skipped += skipped_here
        else:
            videos.append(_video_file(path))
    return videos, skipped


def _videos_of_archive(path: str) -> tuple[list[VideoFile], int]:
    listing = list_archive(path)
    if not listing.videos:
        raise ValueError(
            f"input {path!r}: the zip archive holds no video file ({listing.other_files} other files; videos end in "
            f"{', '.join(VIDEO_EXTENSIONS)})"
        )
    videos = [VideoFile(member_stem(info.filename), info.filename, archive=path) for info in listing.videos]
    return videos, listing.other_files


def _read_list_file(path: str) -> list[str]:
    with open(path, "rb") as file:
        head = file.read(4096)
    if b"\x00" in head or not _is_text(head):
        raise ValueError(
            f"input {path!r}: {_describe(head)}, not a video file, a zip archive of videos or a text list of video "
            "paths"
        )
    base = os.path.dirname(path)
    with open(path, encoding="utf-8") as file:
        lines = [line.split("#", 1)[0].strip() for line in file]
    return [os.path.join(base, line) for line in lines if line]


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start > len(head) - 4  # a character cut at the end of the first 4 KiB
    return True


def _describe(head: bytes) -> str:
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    if head[257:262] == b"ustar":
        return "a tar archive (unpack it, or repack the videos as a zip)"
    return f"binary data (first bytes {head[:8].hex(' ')})"


def _download_hub_videos(repo_id: str) -> str:
    """The local folder of Hub dataset `repo_id`'s archives and videos (downloaded into the Hub cache)."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id=repo_id, repo_type="dataset", allow_patterns=HUB_VIDEO_PATTERNS)
    except Exception as error:  # noqa: BLE001  (network, authentication and missing repositories alike)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"input {repo_id!r}: no such local file or folder, and no Hub dataset by that id could be downloaded "
            f"({type(error).__name__}: {reason})"
        ) from error


def _is_frame_folder(path: str) -> bool:
    return os.path.isdir(path) and any(name.lower().endswith(IMAGE_EXTENSIONS) for name in os.listdir(path))


def _is_video(path: str) -> bool:
    return (os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)) or _is_frame_folder(path)


def _is_archive(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as file:
        starts_like_zip = file.read(4) == b"PK\x03\x04"
    return (path.lower().endswith(".zip") or starts_like_zip) and zipfile.is_zipfile(path)


def _video_file(path: str) -> VideoFile:
    path = os.path.normpath(path)
    name = os.path.basename(path)
    return VideoFile(video_id=os.path.splitext(name)[0] if os.path.isfile(path) else name, path=path)


def find_clips(clips_path: str, videos: list[VideoFile]) -> list[VideoFile]:
    """The clips a questions file asks about (STAR: each question its own clip of a video), keyed by
    `feature_id` (the question's row in the features dataset) and cut from `start` to `end` seconds of
    the video `video_id` among `videos`. Each distinct `feature_id` once, sorted."""
    video_of = {video.video_id: video for video in videos}
    clips, missing = {}, set()
    for index, record in enumerate(read_records(clips_path)):
        feature_id = record.get("feature_id", record.get("question_id"))
        if feature_id is None or record.get("video_id") is None:
            raise ValueError(f"{clips_path}: row {index} has no feature_id/question_id or no video_id")
        video_id = str(record["video_id"])
        if video_id not in video_of:
            missing.add(video_id)
            continue
        start, end = record.get("start"), record.get("end")
        clip = replace(
            video_of[video_id],
            video_id=str(feature_id),
            start=None if start is None else float(start),
            end=None if end is None else float(end),
        )
        if clips.setdefault(clip.video_id, clip) != clip:
            raise ValueError(f"{clips_path}: feature_id {clip.video_id!r} names two different clips")
    if missing:
        print(
            f"warning: {len(missing)} videos of {clips_path} are not among the inputs; their clips are skipped "
            f"(e.g. {sorted(missing)[:3]})",
            file=sys.stderr,
        )
    if not clips:
        raise ValueError(f"{clips_path}: no clip's video is among the inputs")
    return sorted(clips.values(), key=lambda clip: clip.video_id)
