"""The one exception tree of the reader and the scorer.

::

    OmrError                      anything this project raises on purpose        exit 1
    ├── LayoutError               a card layout file is missing a field or is inconsistent  2
    ├── ThresholdsError           a thresholds file (--thresholds) is broken                2
    ├── ImageReadError            a file/page cannot be decoded (empty, truncated, not an image)
    ├── PageNotFoundError         the page holds no card (blank page, photo, wrong form)
    │   └── MarkerNotFoundError   corner markers missing/cut off, or orientation undecidable
    ├── ReviewError               an examiner's decision cannot be recorded (bad value,  2
    │                             doubts left)
    ├── ScoringError              scoring cannot proceed (e.g. a broken results file)  2
    │   └── AnswerKeyError        an answer key file is malformed                      2
    ├── EnvironmentFault          the machine around the run fails: nothing wrong with   3
    │   │                         the inputs, run again once it is fixed
    │   ├── StoreError            the results store cannot be opened or written (disk
    │   │   │                     full, read-only, corrupt, locked, not a store)
    │   │   └── StoreLockedError  another ``omr scan`` is writing the store
    │   ├── OutputError           an output file cannot be written (disk full, read-only,
    │   │                         no permission, no such folder)
    │   └── BarcodeError          the barcode library is unusable (e.g. libzbar missing)
    └── Interrupted               Ctrl-C / SIGTERM: says what is kept                 130

The right column is the command line's exit code for each (``exit_code``; 1, the
code of "a page ended as error", for the page errors).  Expected outcomes (an
unreadable barcode, an ambiguous box) are *values* (flags on the result), not
exceptions; these are for broken contracts and unusable pages.  Every message names
the file or field, the measurement, and what to do.
"""

from __future__ import annotations

import errno

__all__ = [
    "AnswerKeyError",
    "BarcodeError",
    "EnvironmentFault",
    "ImageReadError",
    "Interrupted",
    "LayoutError",
    "MarkerNotFoundError",
    "OmrError",
    "OutputError",
    "PageNotFoundError",
    "ReviewError",
    "ScoringError",
    "StoreError",
    "StoreLockedError",
    "ThresholdsError",
]


class OmrError(Exception):
    """Root of every error this project raises on purpose."""

    #: short machine-readable reason used in the results `flags` column
    code: str = "error"
    #: the command line's exit code when this error ends a command (README "Exit codes")
    exit_code: int = 1


class LayoutError(OmrError):
    code = "layout_invalid"
    exit_code = 2


class ThresholdsError(OmrError):
    code = "thresholds_invalid"
    exit_code = 2


class ImageReadError(OmrError):
    code = "image_unreadable"


class PageNotFoundError(OmrError):
    code = "page_not_found"


class MarkerNotFoundError(PageNotFoundError):
    code = "markers_not_found"


class ReviewError(OmrError):
    code = "review"
    exit_code = 2


class ScoringError(OmrError):
    code = "scoring"
    exit_code = 2


class AnswerKeyError(ScoringError):
    code = "answer_key_invalid"


class EnvironmentFault(OmrError):
    """The disk, a file system, a library or a service failed, not the inputs."""

    code = "environment"
    exit_code = 3


class StoreError(EnvironmentFault):
    code = "store"


class StoreLockedError(StoreError):
    """Another process holds the results store as its writer (an ``omr scan`` running)."""

    code = "store_locked"


class OutputError(EnvironmentFault):
    code = "output"

    @classmethod
    def writing(cls, what: str, path: object, err: OSError) -> OutputError:
        """The error for an `OSError` writing ``path`` (``what``: "results", "overlay"...).

        >>> import errno
        >>> print(OutputError.writing("results", "r.csv", OSError(errno.ENOSPC, "No space left on device")))
        cannot write results r.csv: No space left on device: free space on its disk (or give a path on \
another disk) and run the command again; an earlier r.csv, if any, is left as it was
        """
        reason = err.strerror or str(err)
        hint = _WRITE_HINTS.get(err.errno or 0, "check the path, its folder and the disk")
        return cls(f"cannot write {what} {path}: {reason}: {hint}; an earlier {path}, if any, is left as it was")


_WRITE_HINTS = {
    errno.ENOSPC: "free space on its disk (or give a path on another disk) and run the command again",
    errno.EDQUOT: "free space within your disk quota (or give a path on another disk) and run the command again",
    errno.EFBIG: "the file is larger than this system allows (a file size limit, 'ulimit -f'): raise the "
                 "limit or give a path on another disk, and run the command again",
    errno.EROFS: "the file system is read-only: give a path on a writable disk",
    errno.EACCES: "no permission to write there: give a path you may write to",
    errno.EPERM: "the file or its folder may not be changed (permissions, an immutable attribute): give "
                 "another path",
    errno.ENOENT: "its folder does not exist: create it or give another path",
    errno.ENOTDIR: "a part of the path is not a folder: give another path",
    errno.EISDIR: "it is a folder: give a file name",
    errno.EIO: "the disk failed (I/O error): check it, or give a path on another disk",
}


class BarcodeError(EnvironmentFault):
    code = "barcode_library"


class Interrupted(OmrError):
    """The run was stopped (Ctrl-C, SIGTERM); the message says what is kept."""

    code = "interrupted"
    exit_code = 130
