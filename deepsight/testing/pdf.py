"""Small real PDFs for upload tests, written by hand: one page of text in Helvetica, optionally
encrypted (by pypdf, as PDF writers do it) or with a `ToUnicode` map that spells what it is given."""

from __future__ import annotations

import io


def pdf_with_text(
    text: str,
    *,
    password: str | None = None,
    algorithm: str = "AES-256",
    to_unicode: dict[str, str] | None = None,
) -> bytes:
    """A one-page PDF showing `text` (ASCII). With `password`, encrypted with it as the user password
    (`""`: opens without one, as "copy-protected" PDFs do). `to_unicode` maps a character of `text` to
    the UTF-16 code units, in hex, its extracted text is to be (`{"A": "D83C"}`: half a pair)."""
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        _stream(f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode("ascii")),
        font + (b" /ToUnicode 6 0 R >>" if to_unicode else b" >>"),
    ]
    if to_unicode:
        pairs = " ".join(f"<{ord(char):02X}> <{units}>" for char, units in to_unicode.items())
        objects.append(
            _stream(
                b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Test def\n"
                b"1 begincodespacerange <00> <FF> endcodespacerange\n"
                + f"{len(to_unicode)} beginbfchar {pairs} endbfchar\n".encode()
                + b"endcmap CMapName currentdict /CMap defineresource pop end end"
            )
        )
    data = _document(objects)
    if password is None:
        return data
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(password, "owner-password", algorithm=algorithm)
    encrypted = io.BytesIO()
    writer.write(encrypted)
    return encrypted.getvalue()


def _stream(content: bytes) -> bytes:
    return b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)


def _document(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()
