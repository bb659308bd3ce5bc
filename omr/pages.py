"""Input pages: find them, identify them, decode one at a time.

A batch names its inputs as files, folders or glob patterns.  `iter_pages` turns
them into `PageRef`s -- one per page, *without decoding any image* -- in a stable
order; `load_page` decodes one referenced page into a grayscale array for the
reader.  Together they let a batch stream: only the pages being read are ever in
memory.

::

    INPUT...  ──iter_sources──►  source paths (files as given, folders walked
                                 recursively in sorted order, globs expanded sorted)
              ──describe_file──► content hash (BLAKE3, streamed), kind (by content),
                                 page count (TIFF frames via Pillow, PDF pages via pypdfium2)
              ──iter_pages─────► PageRef(source, page, path, content_hash, kind, pages)
    PageRef   ──load_page──────► (H, W) uint8 grayscale

Formats and decoders (the kind comes from the file's first bytes, not its name):

==========  ===========================================================================
jpeg, png   ``cv2.imread(path, IMREAD_GRAYSCALE)`` (the fast path); a JPEG without its
            end-of-image marker is rejected as truncated rather than read half grey
tiff        Pillow, one frame per page (multi-page TIFF); bitonal, 16-bit and colour
pdf         pypdfium2, one page per card: a page that is a single upright embedded scan
            is extracted at its own resolution, any other page is rasterised at
            ``pdf_dpi`` (300 DPI)
other       decoded by content: OpenCV first, then Pillow
==========  ===========================================================================

Conversion to gray (`to_gray_u8`), one rule everywhere: colour -> ITU-R BT.601 luma
``Y = 0.299 R + 0.587 G + 0.114 B`` (what both OpenCV's ``IMREAD_GRAYSCALE`` and
Pillow's ``convert("L")`` compute), alpha dropped; 16-bit -> the high byte
(``v >> 8``); bitonal -> 0 / 255.  OpenCV applies a JPEG's EXIF orientation tag,
Pillow (TIFF) does not; either way the reader finds the card's turn itself.

A file that cannot be opened or counted still yields one page (page 1): decoding it
raises `ImageReadError`, so the batch records one ``error`` row with the reason and
never drops an input.
"""

from __future__ import annotations

import glob
import io
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
import threading
from dataclasses import dataclass, replace
from typing import Any

import blake3
import cv2
import numpy as np
from numpy.typing import NDArray

from omr.errors import ImageReadError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PAGE_PIXELS",
    "FileInfo",
    "LastFile",
    "OnSkip",
    "PageRef",
    "Skipped",
    "count_sources",
    "describe_file",
    "iter_pages",
    "iter_sources",
    "load_page",
    "release_open_files",
    "to_gray_u8",
]

#: file name suffixes picked up when walking a folder (explicitly named files are
#: always taken, whatever their name)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".pdf", ".bmp", ".webp"})

_HASH_CHUNK_BYTES = 1 << 18
#: largest file a `LastFile` keeps; a bigger one is hashed in chunks and read again
MAX_KEPT_BYTES = 64 << 20
#: the kinds a `LastFile` keeps (the ones `load_page` decodes from memory)
_KEPT_KINDS = ("jpeg", "png")
_JPEG_TAIL_BYTES = 1024
_SNIFF_BYTES = 1024
_PDF_POINTS_PER_INCH = 72.0
#: largest page decoded or rasterised, in pixels (an A3 card at 600 DPI is 70 million): a
#: bigger one is an error row, refused from its header or page size before any decoding
#: (a 560-byte PDF with a 5 m page would take 3.5 GB)
MAX_PAGE_PIXELS = 80_000_000


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a batch needs to know about one input file before decoding it.

    content_hash : hex BLAKE3 (256 bits) of the file's bytes, "" when the file cannot be read
    kind : ``jpeg``, ``png``, ``tiff``, ``pdf``, ``other`` (by content), ``missing``, or
        ``special`` (not a regular file: a named pipe, a device, a socket, a folder)
    pages : number of pages (frames) in the file; 1 for single images and for files
        whose page count cannot be established (decoding then reports why)
    size_bytes : file size, -1 when unknown
    error : why the file cannot be read, "" when it can
    """

    content_hash: str
    kind: str
    pages: int
    size_bytes: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class PageRef:
    """One page of one input file, not decoded.

    source : the input path as given (folders: the folder as given joined with the
        file's relative path) -- what the results call ``source``
    page : 1-based page number within the file
    path : absolute path used to open the file (workers may run elsewhere)
    content_hash : hex BLAKE3 (256 bits) of the whole file, "" when it cannot be read
    kind : the file kind found by content (see `FileInfo`)
    pages : pages in the file
    error : why the page cannot be read, found while listing or describing it (a folder
        that cannot be listed, a named pipe or a device: never opened for reading, it
        could block); "" otherwise.  `load_page` raises it.
    """

    source: str
    page: int
    path: str
    content_hash: str
    kind: str
    pages: int = 1
    error: str = ""


# -- enumeration ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skipped:
    """A path met while listing the inputs that is not read, and why (said in the summary).

    path : the path as listed
    reason : why it is not read (``not an image suffix``, ``hidden``, ``a folder listed
        already``, ...)
    """

    path: str
    reason: str


#: called with each `Skipped` path while the inputs are listed
OnSkip = Callable[[Skipped], None]


@dataclass(frozen=True, slots=True)
class _Entry:
    """A source path listed, and why it cannot be read when it cannot ("" when it can)."""

    path: str
    error: str = ""


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _glob_regex(parts: Sequence[str]) -> re.Pattern[str]:
    """A regex of the path components ``parts`` of a glob pattern, relative to its base
    (``*``, ``?`` and ``[...]`` within one component, ``**`` any number of folders)."""
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
            continue
        j, text = 0, []
        while j < len(part):
            ch = part[j]
            if ch == "*":
                text.append("[^/]*")
            elif ch == "?":
                text.append("[^/]")
            elif ch == "[" and (end := part.find("]", j + (2 if part[j + 1:j + 2] in ("!", "]") else 1))) > 0:
                body = part[j + 1:end]
                body = "^" + body[1:] if body.startswith("!") else body
                text.append("[" + body.replace("\\", "\\\\") + "]")
                j = end
            else:
                text.append(re.escape(ch))
            j += 1
        out.append("".join(text) + ("" if last else "/"))
    return re.compile("".join(out), re.DOTALL)


class _Lister:
    """Lists INPUT arguments: every folder of one at most once, whatever the links.

    A folder is known by its device and inode, so a link to a folder listed already (a
    second route to it, or a loop back to a parent) is not listed again: each file is
    met once, and a loop cannot hang the listing.  Links to folders are followed.
    """

    def __init__(self, on_skip: OnSkip | None) -> None:
        self._on_skip = on_skip
        self._listed: dict[tuple[int, int], str] = {}

    def skip(self, path: str, reason: str) -> None:
        if self._on_skip is not None:
            self._on_skip(Skipped(path, reason))

    def item(self, item: str) -> Iterator[_Entry]:
        """The entries of one INPUT argument (its folders each listed once)."""
        self._listed = {}
        try:
            is_dir = stat.S_ISDIR(os.stat(item).st_mode)
            exists = True
        except OSError:
            is_dir, exists = False, os.path.lexists(item)
        if is_dir:
            yield from self.walk(item)
        elif exists or not _is_glob(item):
            yield _Entry(item)
        elif "**" in item:
            yield from self.recursive_glob(item)
        else:
            matches = sorted(glob.glob(item))
            if not matches:
                yield _Entry(item)
            for match in matches:
                if os.path.isdir(match):
                    yield from self.walk(match)
                else:
                    yield _Entry(match)

    def recursive_glob(self, pattern: str) -> Iterator[_Entry]:
        """Expand a ``**`` pattern by walking its base folder once (links followed, each
        folder once) rather than by `glob.glob`, which follows folder links into loops."""
        parts = pattern.split(os.sep)
        first = next(i for i, part in enumerate(parts) if _is_glob(part))
        base = os.sep.join(parts[:first]) if first else ""
        if first == 1 and parts[0] == "":
            base = os.sep
        rest = [p for p in parts[first:] if p]
        found = False
        for entry in self.walk(base, _glob_regex(rest)):
            found = True
            yield entry
        if not found:
            yield _Entry(pattern)

    def walk(self, top: str, pattern: re.Pattern[str] | None = None) -> Iterator[_Entry]:
        """Files under the folder ``top``, depth first in sorted order (a folder's files,
        then its sub-folders).  Without ``pattern``: files with an `IMAGE_SUFFIXES`
        suffix; every other name is reported skipped.  With it: files whose path relative
        to ``top`` matches, and everything under a matching folder.  A folder that
        cannot be listed is an entry with its error (one ``error`` row)."""
        taken_top = pattern is None or pattern.fullmatch("") is not None
        stack: list[tuple[str, str, bool]] = [(top, "", taken_top)]
        while stack:
            folder, rel, taken = stack.pop()
            try:
                st = os.stat(folder or ".")
            except OSError as err:
                yield _Entry(folder, f"{folder}: cannot open the folder: {err.strerror or err}")
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in self._listed:
                self.skip(folder, f"the same folder as {self._listed[ident]} (a link to it), listed once")
                continue
            self._listed[ident] = folder
            try:
                with os.scandir(folder or ".") as it:
                    names = sorted((e.name, e) for e in it)
            except OSError as err:
                yield _Entry(folder, f"{folder}: cannot list the folder: {err.strerror or err}; "
                                     "check its permissions and path length")
                continue
            subfolders = []
            for name, entry in names:
                path = os.path.join(folder, name) if folder else name
                sub_rel = f"{rel}{name}"
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                hidden = name.startswith(".")
                if is_dir:
                    if hidden:
                        if taken:
                            self.skip(path, "hidden folder, not listed")
                        continue
                    sub_taken = taken or pattern.fullmatch(sub_rel) is not None  # type: ignore[union-attr]
                    subfolders.append((path, sub_rel + "/", sub_taken))
                elif not taken:
                    if not hidden and pattern.fullmatch(sub_rel) is not None:  # type: ignore[union-attr]
                        yield _Entry(path)
                elif hidden:
                    self.skip(path, "hidden name")
                elif os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                    yield _Entry(path)
                else:
                    self.skip(path, "not a card image name (read from folders: "
                                    f"{', '.join(sorted(IMAGE_SUFFIXES))}; name the file to read it)")
            stack.extend(reversed(subfolders))


def _entries(inputs: Iterable[str], on_skip: OnSkip | None = None) -> Iterator[_Entry]:
    lister = _Lister(on_skip)
    for item in inputs:
        yield from lister.item(item)


def iter_sources(inputs: Iterable[str], on_skip: OnSkip | None = None) -> Iterator[str]:
    """Expand INPUT arguments into source file paths, lazily.

    Parameters
    ----------
    inputs : iterable of str
        Files (taken as given, whatever their suffix), folders (walked recursively in
        sorted order, keeping files with an `IMAGE_SUFFIXES` suffix and skipping hidden
        names; links to folders followed, each folder listed once), or glob patterns
        (``**`` allowed; matches sorted, folders among them walked).  A path that
        exists is never treated as a pattern.
    on_skip : callable, optional
        Called with a `Skipped` for every name a folder holds that is not read (another
        suffix, hidden, a second link to a folder already listed).

    Yields
    ------
    str
        Source paths, in input order.  A path that does not exist and matches nothing
        is yielded as is: decoding it reports the missing file (one ``error`` row); so
        is a folder that cannot be listed.
    """
    for entry in _entries(inputs, on_skip):
        yield entry.path


def _sniff(head: bytes) -> str:
    """File kind from its first bytes."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if b"%PDF-" in head[:1024]:
        return "pdf"
    return "other"


def _count_pages(path: str, kind: str) -> int:
    """Pages in a TIFF / PDF without decoding them; 1 when they cannot be counted."""
    try:
        if kind == "tiff":
            from PIL import Image

            with Image.open(path) as im:
                return max(1, int(getattr(im, "n_frames", 1)))
        if kind == "pdf":
            import pypdfium2 as pdfium

            pdf = pdfium.PdfDocument(path)
            try:
                return max(1, len(pdf))
            finally:
                pdf.close()
    except Exception:  # a file we cannot count is decoded (and reported) as page 1
        return 1
    return 1


class LastFile:
    """The bytes of the file `describe_file` read last, for `load_page` to decode them.

    A batch read in one process hashes a file and then decodes it: read twice from
    the page cache, once cold, that cost ~1.5 ms of a 300 DPI page's ~38; decoding the
    bytes just hashed costs no more than ``cv2.imread`` alone.  Pass one `LastFile`
    to `iter_pages` (``keep=``) and the same to `load_page` (``kept=``), in one process.

    It holds one file, the last JPEG or PNG of at most `MAX_KEPT_BYTES` described
    with it, in one buffer reused from file to file (it keeps the size of the largest;
    a fresh buffer per file made the allocator hand the decoded image untouched
    memory: page faults, ~4 ms a page).  `load_page` takes the bytes only for the page
    of the file held, by path and content hash; any other page is read from its file
    as usual, so holding the wrong file can cost time, never a wrong page.
    """

    def __init__(self) -> None:
        self._buffer = np.empty(0, np.uint8)
        self._size = -1  # -1: nothing held
        self._path = ""
        self._content_hash = ""

    def _read_whole(self, fh: io.RawIOBase) -> memoryview | None:
        """The whole of the open file ``fh``, read into the buffer; None when it is too big
        (``fh`` is then back at its start).  Forgets the file held before."""
        self._size = -1
        expected = os.fstat(fh.fileno()).st_size
        if expected > MAX_KEPT_BYTES:
            return None
        size = 0
        while True:
            if size == self._buffer.size:  # room for the file and one byte more, to see its end
                if size > MAX_KEPT_BYTES:  # it grew while being read
                    fh.seek(0)
                    return None
                grown = np.empty(max(expected + 1, 2 * size, 1 << 16), np.uint8)
                grown[:size] = self._buffer[:size]
                self._buffer = grown
            n = fh.readinto(memoryview(self._buffer)[size:])
            if not n:
                return memoryview(self._buffer)[:size]
            size += n

    def _hold(self, path: str, size: int, content_hash: str) -> None:
        self._path, self._size, self._content_hash = os.path.abspath(path), size, content_hash

    def data_for(self, ref: PageRef) -> NDArray[np.uint8] | None:
        """The bytes of ``ref``'s file when they are the ones held, else None.

        A view into the buffer: valid until the next file is described with it.
        """
        if self._size < 0 or ref.path != self._path or ref.content_hash != self._content_hash:
            return None
        return self._buffer[: self._size]


_SPECIAL_KINDS = (
    (stat.S_ISDIR, "is a folder"),
    (stat.S_ISFIFO, "is a named pipe (FIFO)"),
    (stat.S_ISCHR, "is a character device"),
    (stat.S_ISBLK, "is a block device"),
    (stat.S_ISSOCK, "is a socket"),
)


class _NotRegularFile(OSError):
    """Opened something that is not a regular file (its reading could block forever)."""


def _open_regular(path: str) -> int:
    """A read-only descriptor of the regular file ``path``.

    Opened without blocking (a named pipe with no writer would block ``open`` forever)
    and checked on the descriptor itself, so what is read is what was checked.

    Raises
    ------
    OSError
        `_NotRegularFile` for a named pipe, a device, a socket or a folder.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = next((text for test, text in _SPECIAL_KINDS if test(mode)), "is not a regular file")
        raise _NotRegularFile(f"{what}, not an image file; only regular files are read")
    return fd


def describe_file(path: str, keep: LastFile | None = None) -> FileInfo:
    """Hash a file, sniff its kind, count its pages.

    The file is hashed in 256 KiB chunks, or, with ``keep``, read whole into it and
    hashed there (`LastFile`).  Never raises for an unreadable file: the reason goes
    into `FileInfo.error`; a path that is not a regular file (kind ``special``) is
    never read.
    """
    # BLAKE3, not SHA-256: as collision-proof, and 0.31 against 0.81 ms a 1.3 MB scan
    # here (SHA-256 with the CPU's SHA extensions)
    digest = blake3.blake3()
    whole = None
    try:
        with open(_open_regular(path), "rb", buffering=0) as fh:
            # only what `load_page` decodes from memory is kept: JPEG and PNG
            keepable = keep is not None and _sniff(os.pread(fh.fileno(), _SNIFF_BYTES, 0)) in _KEPT_KINDS
            whole = keep._read_whole(fh) if keepable else None
            if whole is not None:
                digest.update(whole)
                head, size = bytes(whole[:_SNIFF_BYTES]), len(whole)
            else:
                head, size = _hash_chunks(fh, digest)
    except _NotRegularFile as err:
        return FileInfo(content_hash="", kind="special", pages=1, size_bytes=-1, error=str(err))
    except OSError as err:
        kind = "missing" if isinstance(err, FileNotFoundError) else "other"
        return FileInfo(content_hash="", kind=kind, pages=1, size_bytes=-1, error=err.strerror or str(err))
    content_hash = digest.hexdigest()
    if whole is not None:
        keep._hold(path, size, content_hash)
    kind = _sniff(head)
    return FileInfo(content_hash=content_hash, kind=kind, pages=_count_pages(path, kind), size_bytes=size)


def _hash_chunks(fh: io.RawIOBase, digest: blake3.blake3) -> tuple[bytes, int]:
    """Feed the open file ``fh`` to ``digest`` in chunks; its first KiB and its size."""
    head = b""
    size = 0
    # one reused buffer: a fresh 1 MiB bytes object per read is fresh memory each time
    # (page faults: ~0.35 ms of a 1.3 MB scan's 1.4 ms)
    buffer = bytearray(_HASH_CHUNK_BYTES)
    view = memoryview(buffer)
    while n := fh.readinto(buffer):
        if not head:
            head = bytes(view[: min(n, _SNIFF_BYTES)])
        digest.update(view[:n])
        size += n
    return head, size


def iter_pages(
    inputs: Iterable[str], keep: LastFile | None = None, on_skip: OnSkip | None = None
) -> Iterator[PageRef]:
    """Every page of every input, as `PageRef`s, lazily (one file described at a time).

    ``keep``: each file is read whole into it, for `load_page` to decode (`LastFile`).
    ``on_skip``: told of every name in a folder that is not read (`iter_sources`).

    Examples
    --------
    >>> refs = list(iter_pages(["scans/"]))  # doctest: +SKIP
    >>> refs[0].source, refs[0].page  # doctest: +SKIP
    ('scans/card-0001.jpg', 1)
    """
    for entry in _entries(inputs, on_skip):
        source = entry.path
        path = os.path.abspath(source)
        if entry.error:
            yield PageRef(source=source, page=1, path=path, content_hash="", kind="missing",
                          error=entry.error)
            continue
        info = describe_file(source, keep)
        error = f"{source}: {info.error}" if info.kind == "special" else ""
        for page in range(1, info.pages + 1):
            yield PageRef(
                source=source,
                page=page,
                path=path,
                content_hash=info.content_hash,
                kind=info.kind,
                pages=info.pages,
                error=error,
            )


# -- decoding -------------------------------------------------------------------------


def to_gray_u8(image: NDArray, *, channel_order: str = "BGR") -> NDArray[np.uint8]:
    """Convert a decoded image to (H, W) uint8 grayscale with the module's one rule.

    Parameters
    ----------
    image : (H, W) or (H, W, 3|4) ndarray of bool, uint8 or uint16
        Colour images in ``channel_order`` (``BGR`` as OpenCV/pdfium give, or ``RGB``
        as Pillow gives), optionally with alpha as the 4th channel (dropped).
    channel_order : {"BGR", "RGB"}

    Returns
    -------
    (H, W) uint8 ndarray, C-contiguous
        bool -> 0/255; uint16 -> ``v >> 8``; colour -> BT.601 luma.

    Raises
    ------
    ImageReadError
        For any other shape or dtype (named in the message).

    Examples
    --------
    >>> int(to_gray_u8(np.array([[[0, 0, 255]]], np.uint8))[0, 0])  # pure red, BGR
    76
    """
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * np.uint8(255)
    elif image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageReadError(f"image: unsupported sample type {image.dtype}; expected 1, 8 or 16 bits")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2GRAY if channel_order == "BGR" else cv2.COLOR_RGB2GRAY
        image = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), code)
    elif image.ndim == 3 and image.shape[2] in (1, 2):
        image = image[..., 0]
    if image.ndim != 2:
        raise ImageReadError(f"image: unsupported shape {image.shape}; expected (H, W) or (H, W, 3|4)")
    return np.ascontiguousarray(image)


def _open_error(ref: PageRef, err: OSError) -> ImageReadError:
    """The ImageReadError for a file that cannot be opened or read."""
    if isinstance(err, _NotRegularFile):
        return ImageReadError(f"{ref.source}: {err}")
    if isinstance(err, FileNotFoundError):
        return ImageReadError(f"{ref.source}: no such file; check the path")
    if isinstance(err, IsADirectoryError):
        return ImageReadError(f"{ref.source}: is a folder, not an image file")
    return ImageReadError(f"{ref.source}: cannot read the file: {err.strerror or err}")


def _read_bytes(ref: PageRef) -> bytes:
    try:
        with open(_open_regular(ref.path), "rb") as fh:
            return fh.read()
    except OSError as err:
        raise _open_error(ref, err) from err


@dataclass(frozen=True, slots=True)
class _FileEnds:
    """The first and the last KiB of a file (what sniffing and the JPEG end check need),
    and the image size its header gives (None when it does not say)."""

    head: bytes
    tail: bytes
    size_px: tuple[int, int] | None = None


def _read_ends(ref: PageRef) -> _FileEnds:
    try:
        with open(_open_regular(ref.path), "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _JPEG_TAIL_BYTES))
            tail = fh.read(_JPEG_TAIL_BYTES)
            fd = fh.fileno()
            size_px = _header_size(head, lambda at, n: os.pread(fd, n, at))
            return _FileEnds(head=head, tail=tail, size_px=size_px)
    except OSError as err:
        raise _open_error(ref, err) from err


def _header_size(head: bytes, read_at: Callable[[int, int], bytes]) -> tuple[int, int] | None:
    """(width, height) from a PNG's or a JPEG's header, None when it does not say.

    ``head``: the file's first bytes; ``read_at(offset, n)``: more of it (a JPEG's
    frame header can follow large metadata segments).  A few microseconds a page.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if not head.startswith(b"\xff\xd8"):
        return None
    at = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        seg = head[at:at + 9] if at + 9 <= len(head) else read_at(at, 9)
        if len(seg) < 4 or seg[0] != 0xFF:
            return None  # not where a segment should start: the decoder will say why
        marker = seg[1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _JPEG_FRAME_MARKERS:
            if len(seg) < 9:
                return None
            return int.from_bytes(seg[7:9], "big"), int.from_bytes(seg[5:7], "big")
        if marker == 0xDA or marker == 0xD9:  # scan data or the end before any frame header
            return None
        at += 2 if 0xD0 <= marker <= 0xD8 or marker == 0x01 else 2 + int.from_bytes(seg[2:4], "big")
    return None


#: JPEG start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC), which give the image size
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_MAX_SEGMENTS = 10_000


def _check_size(ref: PageRef, width: float, height: float, what: str = "") -> None:
    """Refuse a page of more than `MAX_PAGE_PIXELS` pixels, before it is decoded or rendered."""
    if width * height > MAX_PAGE_PIXELS:
        raise ImageReadError(
            f"{ref.source} page {ref.page}: {width:.0f} x {height:.0f} pixels{what} "
            f"({width * height / 1e6:.0f} million) is more than a card scan has "
            f"(at most {MAX_PAGE_PIXELS / 1e6:.0f} million); scan the card again at 300 DPI"
        )


def _decode_file(ref: PageRef, kind: str, ends: _FileEnds) -> NDArray[np.uint8] | None:
    """A JPEG or PNG decoded straight from its file (None when OpenCV cannot).

    ``cv2.imread`` and ``cv2.imdecode`` decode alike, but reading the file into a
    Python ``bytes`` first cost ~4.5 ms per 300 DPI page, almost all of it page
    faults: the extra megabytes of the buffer made the C allocator hand the decoded
    image fresh, untouched memory on every page (`bench/RESULTS.md` ## Throughput).
    A JPEG's end marker is checked on the file's last KiB (`_check_jpeg_complete`).
    """
    if ends.size_px is not None:
        _check_size(ref, *ends.size_px)
    if kind == "jpeg" and b"\xff\xd9" not in ends.tail:
        _check_jpeg_complete(_read_bytes(ref), ref)
    gray = cv2.imread(ref.path, cv2.IMREAD_GRAYSCALE)
    if gray is None or gray.size == 0:
        return None
    return np.ascontiguousarray(gray)


def _check_jpeg_complete(data: bytes, ref: PageRef) -> None:
    """Reject a truncated JPEG (OpenCV would decode it, padding the missing rows grey).

    The end-of-image marker normally ends the file; when it is not in the last KiB
    (a truncated file, or a writer that appends trailing data), the entropy-coded data
    is checked to its end by a fast 1/8-scale decode.
    """
    if b"\xff\xd9" in data[-_JPEG_TAIL_BYTES:]:
        return
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("L", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(
            f"{ref.source}: truncated JPEG ({len(data)} bytes, no end-of-image marker; {err}); "
            "copy or scan the page again"
        ) from err


def _decode_cv2(data: bytes, ref: PageRef, kind: str) -> NDArray[np.uint8] | None:
    size_px = _header_size(data[:_SNIFF_BYTES], lambda at, n: data[at:at + n])
    if size_px is not None:
        _check_size(ref, *size_px)
    if kind == "jpeg":
        _check_jpeg_complete(data, ref)
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if gray is None or gray.size == 0:
        return None
    return np.ascontiguousarray(gray)


def _pil_to_gray(im: object, ref: PageRef) -> NDArray[np.uint8]:
    """A Pillow image (any mode) as (H, W) uint8 by the module's rule."""
    from PIL import Image

    assert isinstance(im, Image.Image)
    mode = im.mode
    if mode in ("L", "1"):
        return to_gray_u8(np.asarray(im.convert("L")))
    if mode.startswith("I;16"):
        return to_gray_u8(np.asarray(im).astype(np.uint16, copy=False))
    if mode in ("I", "F"):
        arr = np.asarray(im)
        raise ImageReadError(
            f"{ref.source} page {ref.page}: {mode!r} ({arr.dtype}) samples are not a scan format; "
            "save the scan as 1-, 8- or 16-bit gray or 8-bit colour"
        )
    return to_gray_u8(np.asarray(im.convert("L")))


class _OpenDocument(threading.local):
    """The multi-page file (TIFF or PDF) this thread read a page of last, kept open.

    A batch reads a file's pages in order, mostly in the same process: opening the
    file again for each page and walking to page k made a TIFF of n pages cost n^2
    (2,000 tiny pages: 213 s), and a PDF is parsed again each time.  Kept open, the
    next page is one step on.  Known by path and by the file's identity, size and
    modification time, so a file changed since is opened again.
    """

    def __init__(self) -> None:
        self.key: tuple = ()
        self.doc: Any = None

    def get(self, ref: PageRef, opener: Callable[[], Any]) -> Any:
        st = os.stat(ref.path)
        key = (ref.kind, ref.path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self.key:
            self.close()
            self.doc = opener()
            self.key = key
        return self.doc

    def close(self) -> None:
        doc, self.doc, self.key = self.doc, None, ()
        if doc is not None:
            doc.close()


_open_document = _OpenDocument()


def release_open_files() -> None:
    """Close the multi-page file this thread keeps open for its next page (`_OpenDocument`)."""
    _open_document.close()


def _open_tiff(ref: PageRef) -> Any:
    from PIL import TiffImagePlugin

    fh = open(_open_regular(ref.path), "rb")
    try:
        # not Image.open: its decompression-bomb check would stop the file at its first
        # page; each page's size is checked against MAX_PAGE_PIXELS before it is decoded
        im = TiffImagePlugin.TiffImageFile(fh)
    except BaseException:
        fh.close()
        raise
    im._exclusive_fp = True  # closing the image closes the file
    return im


def _load_tiff(ref: PageRef) -> NDArray[np.uint8]:
    from PIL import Image

    try:
        im = _open_document.get(ref, lambda: _open_tiff(ref))
        try:
            im.seek(ref.page - 1)
        except EOFError:
            frames = im.n_frames
            raise ImageReadError(f"{ref.source}: has {frames} pages, page {ref.page} asked for") from None
        _check_size(ref, *im.size)
        im.load()
        return _pil_to_gray(im, ref)
    except ImageReadError:
        raise
    except OSError as err:
        release_open_files()
        if isinstance(err, _NotRegularFile | FileNotFoundError):
            raise _open_error(ref, err) from err
        raise ImageReadError(f"{ref.source} page {ref.page}: cannot decode the TIFF: {err}") from err
    except (ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        release_open_files()
        raise ImageReadError(f"{ref.source} page {ref.page}: cannot decode the TIFF: {err}") from err


def _pdf_single_image(page: object, ref: PageRef | None = None) -> NDArray[np.uint8] | None:
    """The page's pixels when the page is exactly one upright embedded image, else None."""
    import pypdfium2 as pdfium

    assert isinstance(page, pdfium.PdfPage)
    objects = list(page.get_objects(max_depth=1))
    if len(objects) != 1 or objects[0].type != pdfium.raw.FPDF_PAGEOBJ_IMAGE:
        return None
    obj = objects[0]
    m = obj.get_matrix()
    if not (m.a > 0 and m.d > 0 and m.b == 0 and m.c == 0) or page.get_rotation() != 0:
        return None  # turned or mirrored placement: let the renderer apply it
    if ref is not None:
        _check_size(ref, *obj.get_px_size(), " (the page's embedded image)")
    bitmap = obj.get_bitmap(render=False)
    arr = bitmap.to_numpy()
    if bitmap.format not in (pdfium.raw.FPDFBitmap_Gray, pdfium.raw.FPDFBitmap_BGR,
                             pdfium.raw.FPDFBitmap_BGRx, pdfium.raw.FPDFBitmap_BGRA):
        return None
    return to_gray_u8(arr, channel_order="BGR")


def _open_pdf(ref: PageRef) -> Any:
    import pypdfium2 as pdfium

    os.close(_open_regular(ref.path))  # never hand pdfium a pipe or a device
    try:
        return pdfium.PdfDocument(ref.path)
    except pdfium.PdfiumError as err:
        # pdfium's error code is not reset by a success, so a failure that sets none
        # (an empty page tree) reports the previous file's ("PDFium: Success" at best):
        # a password is said only when the file is encrypted
        if getattr(err, "err_code", None) in (4, 5) and b"/Encrypt" in _read_bytes(ref):
            why = "it is password-protected (encrypted); save a copy without a password"
        else:
            why = "it is damaged, truncated, not a PDF, or has no pages; copy or export it again"
        raise ImageReadError(f"{ref.source}: cannot open the PDF: {why}") from None


def _load_pdf(ref: PageRef, dpi: float) -> NDArray[np.uint8]:
    import pypdfium2 as pdfium

    try:
        pdf = _open_document.get(ref, lambda: _open_pdf(ref))
    except OSError as err:
        raise _open_error(ref, err) from err
    try:
        if len(pdf) == 0:
            raise ImageReadError(f"{ref.source}: the PDF has no pages")
        if ref.page > len(pdf):
            raise ImageReadError(f"{ref.source}: has {len(pdf)} pages, page {ref.page} asked for")
        page = pdf[ref.page - 1]
        try:
            try:
                extracted = _pdf_single_image(page, ref)
            except pdfium.PdfiumError:
                extracted = None
            if extracted is not None:
                return extracted
            scale = dpi / _PDF_POINTS_PER_INCH
            width_pt, height_pt = page.get_size()
            mm = 25.4 / _PDF_POINTS_PER_INCH
            _check_size(ref, width_pt * scale, height_pt * scale,
                        f" (a {width_pt * mm:.0f} x {height_pt * mm:.0f} mm page at {dpi:g} DPI)")
            bitmap = page.render(scale=scale, grayscale=True)
            return to_gray_u8(bitmap.to_numpy())
        finally:
            page.close()
    except pdfium.PdfiumError as err:
        release_open_files()
        raise ImageReadError(f"{ref.source} page {ref.page}: cannot render the PDF page: {err}") from err


def _load_other(data: bytes, ref: PageRef) -> NDArray[np.uint8]:
    from PIL import Image, UnidentifiedImageError

    try:  # Pillow reads the size from the header without decoding (BMP, WebP, GIF, ...)
        with Image.open(io.BytesIO(data)) as im:
            size_px = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        size_px = None
    if size_px is not None:
        _check_size(ref, *size_px)
    gray = _decode_cv2(data, ref, "other")
    if gray is not None:
        return gray

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return _pil_to_gray(im, ref)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as err:
        raise ImageReadError(
            f"{ref.source}: not an image (first bytes {data[:8]!r}, {len(data)} bytes); "
            "expected JPEG, PNG, TIFF or PDF"
        ) from err


def load_page(ref: PageRef, *, pdf_dpi: float = 300.0, kept: LastFile | None = None) -> NDArray[np.uint8]:
    """Decode one page into grayscale.

    Parameters
    ----------
    ref : PageRef
    pdf_dpi : float
        Resolution at which PDF pages that are not a single embedded scan are rasterised.
    kept : LastFile, optional
        The `LastFile` ``ref`` was described with: a JPEG or PNG it still holds is
        decoded from there, without reading the file again.

    Returns
    -------
    (H, W) uint8 ndarray
        0 black .. 255 white, C-contiguous (see the module docstring for the rule).

    Raises
    ------
    ImageReadError
        The file is missing, empty, truncated, not an image, or the page does not
        exist; the message names the file and the page.
    """
    if ref.error:
        raise ImageReadError(ref.error)
    kind = ref.kind
    if kind == "tiff":
        return _load_tiff(ref)
    if kind == "pdf":
        return _load_pdf(ref, pdf_dpi)
    held = kept.data_for(ref) if kept is not None and kind in _KEPT_KINDS and ref.page == 1 else None
    if held is not None:
        return _decode_held(held, ref, kind)
    ends = _read_ends(ref)
    if not ends.head:
        raise ImageReadError(f"{ref.source}: empty file (0 bytes); scan or copy the page again")
    sniffed = _sniff(ends.head)
    if sniffed != kind and sniffed in ("tiff", "pdf"):  # changed since it was described
        return load_page(replace(ref, kind=sniffed), pdf_dpi=pdf_dpi)
    if ref.page != 1:
        raise ImageReadError(f"{ref.source}: a single image has one page, page {ref.page} asked for")
    if sniffed in ("jpeg", "png"):
        gray = _decode_file(ref, sniffed, ends)
        if gray is not None:
            return gray
        return _decode_or_explain(_read_bytes(ref), ref, sniffed)
    return _load_other(_read_bytes(ref), ref)


def _decode_held(data: NDArray[np.uint8], ref: PageRef, kind: str) -> NDArray[np.uint8]:
    """A JPEG or PNG page decoded from the bytes its `LastFile` holds (as `_decode_file`)."""
    size_px = _header_size(data[:_SNIFF_BYTES].tobytes(), lambda at, n: data[at:at + n].tobytes())
    if size_px is not None:
        _check_size(ref, *size_px)
    if kind == "jpeg" and b"\xff\xd9" not in data[-_JPEG_TAIL_BYTES:].tobytes():
        _check_jpeg_complete(data.tobytes(), ref)
    gray = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if gray is None or gray.size == 0:
        return _decode_or_explain(data.tobytes(), ref, kind)
    return np.ascontiguousarray(gray)


def _decode_or_explain(data: bytes, ref: PageRef, kind: str) -> NDArray[np.uint8]:
    """Decode ``data`` once more after OpenCV failed on it, to say why (or to succeed)."""
    gray = _decode_cv2(data, ref, kind)
    if gray is None:
        raise ImageReadError(
            f"{ref.source}: cannot decode the {kind.upper()} ({len(data)} bytes; "
            "truncated or corrupt); copy or scan the page again"
        )
    return gray


def count_sources(inputs: Sequence[str]) -> int:
    """How many source files ``inputs`` expand to (walks folders, opens nothing)."""
    return sum(1 for _ in _entries(inputs))
