"""Videos inside zip archives, as the Hub's video QA datasets ship them (`videos.zip`, `videos_chunked_01.zip`).

A member stored without compression (how video archives are made: MP4s do not compress) is decoded
in place: `FileWindow` is a read-only window over the member's bytes in the archive, which PyAV
reads and seeks like a file, so nothing is unpacked first. A compressed member is copied out to a
temporary file for the time of its decoding. The video id of a member is its file stem
(`NExTVideo/4010069381.mp4` -> `4010069381`), the id the questions of that dataset use.
"""

import io
import os
import shutil
import struct
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

from modeling_mist.video_decoding_mist import VIDEO_EXTENSIONS

ARCHIVE_SEPARATOR = "::"  # `videos.zip::NExTVideo/1.mp4`: how a member is named in messages and failure lists
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip member's local file header (30 bytes)


@dataclass(frozen=True)
class ArchiveListing:
    """The video members of one archive, and how many other files it holds."""

    archive: str
    videos: list[zipfile.ZipInfo]
    other_files: int


def list_archive(path: str) -> ArchiveListing:
    """The members of `path` with a video extension, and the count of its other (non-folder) members."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"input {path!r}: not a readable zip archive ({error})") from error
    videos = [info for info in members if info.filename.lower().endswith(VIDEO_EXTENSIONS)]
    return ArchiveListing(path, videos, len(members) - len(videos))


def member_name(archive: str, member: str) -> str:
    return f"{archive}{ARCHIVE_SEPARATOR}{member}"


def member_stem(member: str) -> str:
    return os.path.splitext(os.path.basename(member))[0]


class FileWindow(io.RawIOBase):
    """Bytes `start .. start + size` of a file, read and seeked like a file of their own, named `name`."""

    def __init__(self, path: str, start: int, size: int, name: str):
        self.name = name
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115  (closed with this object)
        self._start, self._size, self._position = start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = min(max(base + offset, 0), self._size)
        return self._position

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self._size - self._position)
        if count <= 0:
            return 0
        self._file.seek(self._start + self._position)
        read = self._file.readinto(memoryview(buffer)[:count])
        self._position += read
        return read

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def stored_member_start(archive: str, info: zipfile.ZipInfo) -> int:
    """Where the bytes of a stored member begin: after its local header, whose extra field may differ from
    the one in the archive's directory."""
    with open(archive, "rb") as file:
        file.seek(info.header_offset)
        header = _LOCAL_HEADER.unpack(file.read(_LOCAL_HEADER.size))
    if header[0] != b"PK\x03\x04":
        raise ValueError(f"{member_name(archive, info.filename)}: no local file header where the archive points")
    name_length, extra_length = header[9], header[10]
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


@contextmanager
def open_member(archive: str, member: str):
    """`member` of `archive` as an open binary file for PyAV: a stored member read in place, a compressed one
    from a temporary copy (decompressing a seeking reader's way through the file again and again is slower)."""
    name = member_name(archive, member)
    with zipfile.ZipFile(archive) as opened:
        info = opened.getinfo(member)
        if info.compress_type == zipfile.ZIP_STORED:
            window = FileWindow(archive, stored_member_start(archive, info), info.file_size, name)
            with io.BufferedReader(window, buffer_size=1 << 20) as file:
                yield file
            return
        with tempfile.NamedTemporaryFile(suffix=os.path.splitext(member)[1]) as copy:
            with opened.open(info) as source:
                shutil.copyfileobj(source, copy, 1 << 20)
            copy.flush()
            with io.BufferedReader(FileWindow(copy.name, 0, info.file_size, name), buffer_size=1 << 20) as file:
                yield file
