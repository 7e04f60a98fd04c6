"""Checking an uploaded source file and reading its text.

The file's name is only ever a label: it is stored under a generated name, so `../../etc/passwd`
or a name full of control characters cannot become a path.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePath

from django.core.files.uploadedfile import UploadedFile

from chat_sessions.text import text_unicode_only

logger = logging.getLogger(__name__)

MAX_SOURCE_BYTES = 10 * 1024 * 1024
TEXT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".json": "application/json",
    ".html": "text/html",
    ".htm": "text/html",
}
PDF = {".pdf": "application/pdf"}
ALLOWED_EXTENSIONS = sorted({*TEXT_TYPES, *PDF})


class UploadRejected(ValueError):
    """The file is not one we take; the message says why."""


@dataclass(frozen=True)
class CheckedUpload:
    title: str
    extension: str
    mime_type: str
    text: str
    size: int


def display_name(raw: str) -> str:
    """The base name of what the client called the file, stripped of anything but printable text."""
    name = PurePath(raw.replace("\\", "/")).name
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip(" .")
    return name[:255] or "upload"


#: What browsers escape in a multipart form's file name (the HTML standard), which Django leaves as is.
FORM_NAME_ESCAPES = re.compile(r"%(22|0A|0D)", re.IGNORECASE)


def form_filename(raw: str) -> str:
    """A file name as the user named it: `my "quoted" notes.md`, not `my %22quoted%22 notes.md`."""
    return FORM_NAME_ESCAPES.sub(lambda match: chr(int(match.group(1), 16)), raw)


def upload_check(upload: UploadedFile, *, max_bytes: int = MAX_SOURCE_BYTES) -> CheckedUpload:
    """Size, type (by extension and content) and text of an uploaded file, or `UploadRejected`."""
    if upload.size is None or upload.size == 0:
        raise UploadRejected("The file is empty.")
    if upload.size > max_bytes:
        raise UploadRejected(f"The file is larger than {max_bytes // (1024 * 1024)} MB.")
    title = display_name(form_filename(upload.name or ""))
    extension = PurePath(title).suffix.lower()
    if extension not in TEXT_TYPES and extension not in PDF:
        raise UploadRejected(
            f"Files of type '{extension or 'none'}' are not accepted; use one of {', '.join(ALLOWED_EXTENSIONS)}."
        )
    data = upload.read(max_bytes + 1)
    upload.seek(0)
    if len(data) > max_bytes:
        raise UploadRejected(f"The file is larger than {max_bytes // (1024 * 1024)} MB.")
    if extension in PDF:
        if not data.startswith(b"%PDF-"):
            raise UploadRejected("The file is not a PDF.")
        return CheckedUpload(title, extension, PDF[extension], _pdf_text(data), len(data))
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Windows' "Unicode" text
        raise UploadRejected("The file is UTF-16 text; save it as UTF-8 and upload it again.")
    if b"\x00" in data:  # the whole file: a NUL anywhere cannot be stored (PostgreSQL text)
        raise UploadRejected("The file is not text.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadRejected("The file is not UTF-8 text.") from exc
    return CheckedUpload(title, extension, TEXT_TYPES[extension], text, len(data))


def _pdf_text(data: bytes) -> str:
    """The text of a PDF's pages. One encrypted with an empty password (protected against copying
    only, as many are) is read; one that needs a password is refused, saying so."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        text = "\n\n".join((page.extract_text() or "") for page in reader.pages)
    except FileNotDecryptedError as exc:
        raise UploadRejected("The PDF is protected by a password; upload a copy without one.") from exc
    except Exception as exc:
        # A damaged or hostile file makes pypdf raise far more than its own errors (TypeError,
        # NotImplementedError for an unknown encryption, recursion limits...): each is a bad file.
        logger.info("PDF upload not read: %r", exc)
        raise UploadRejected("The PDF could not be read.") from exc
    # Some fonts extract as NUL, which PostgreSQL cannot store, and a broken ToUnicode map can
    # spell half a surrogate pair, which no UTF-8 can carry.
    return text_unicode_only(text.replace("\x00", ""))
