"""Bad input: every broken, hostile or odd file gives LoadError with a clear reason."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest
from reportlab.pdfgen import canvas

from ingest.loaders import parse_document
from ingest.types import Document, LoadError


def _parse(name: str, data: bytes) -> Document:
    return parse_document(Path(name), data, "bad-input")


def _load_error(name: str, data: bytes) -> str:
    with pytest.raises(LoadError) as info:
        _parse(name, data)
    return str(info.value)


def _pdf(draw_text: bool = True, encrypt: str | None = None, blank: bool = False) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, encrypt=encrypt)
    if draw_text:
        pdf.drawString(72, 720, "Harbour exports rose 7% in the first half of 2021.")
    elif not blank:  # an "image only" page: filled shapes, no text objects
        pdf.rect(100, 100, 300, 300, fill=1)
        pdf.circle(250, 600, 80, fill=1)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["a.txt", "a.md", "a.html", "a.pdf", "a.docx"])
@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n "])
def test_empty_file(name: str, data: bytes) -> None:
    assert _load_error(name, data) == "empty document"


def test_markup_without_text() -> None:
    assert _load_error("a.html", b"<html><script>var x = 1;</script><nav>Home</nav></html>") == (
        "no text"
    )
    assert _load_error("a.md", b"---\ntitle: Only metadata\n---\n") == "no text"


def test_only_boilerplate() -> None:
    data = b"Jane Doe\n+1 555-010-0199\nemail us here\n\n(c) 2021 X. All Rights Reserved.\n"
    assert _load_error("a.txt", data) == "no text (only distributor boilerplate)"


def test_unsupported_suffix() -> None:
    assert _load_error("slides.pptx", b"PK\x03\x04") == "unsupported file type .pptx"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8,  # NUL bytes
        bytes(range(1, 32)) * 40,  # no NULs, but control characters only
    ],
)
def test_binary_content_under_txt(data: bytes) -> None:
    assert _load_error("photo.txt", data) == "binary content, not text"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (
            "Café owners in Köln said the “new” harbour tariff—about €5 per crate—was naïve, "
            "and the façade of the old customs hall needs repair before the winter season.",
            "cp1252",
        ),
        (
            "青岛市1至7月进出口总值3418.1亿元，同比增长。山东省推进高水平对外开放，"
            "构建以国内大循环为主体、国内国际双循环相互促进的新发展格局。",
            "gb18030",
        ),
    ],
)
def test_legacy_encodings_decode_correctly(text: str, encoding: str) -> None:
    data = text.encode(encoding)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the test really exercises detection
    assert _parse("legacy.txt", data).text == text


def test_corrupt_pdf() -> None:
    data = _pdf()
    reason = _load_error("cut.pdf", data[: len(data) // 3])
    assert reason.startswith("corrupt or unreadable PDF: ")
    assert _load_error("fake.pdf", b"%PDF-1.7\nnot really a pdf").startswith("corrupt or")


def test_password_protected_pdf() -> None:
    data = _pdf(encrypt="s3cret")
    assert _load_error("locked.pdf", data) == "encrypted PDF (password required)"


@pytest.mark.parametrize("blank", [False, True], ids=["image-only", "blank-page"])
def test_pdf_without_text_layer(blank: bool) -> None:
    assert _load_error("scan.pdf", _pdf(draw_text=False, blank=blank)) == (
        "PDF has no text layer (scanned?)"
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_docx_zip_bomb() -> None:
    # 25 MB of zeros packs into ~25 KB: a ratio of ~1000, refused before python-docx reads it.
    data = _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": bytes(25_000_000)})
    assert len(data) < 100_000
    assert _load_error("bomb.docx", data) == "docx expands to 25 MB (zip bomb?)"


def test_docx_not_a_zip() -> None:
    assert _load_error("fake.docx", b"This is plain text, renamed.") == (
        "corrupt docx (not a zip archive)"
    )


def test_docx_zip_without_document_parts() -> None:
    reason = _load_error("other.docx", _zip({"readme.txt": b"hello"}))
    assert reason.startswith("corrupt docx: ")


def test_docx_truncated() -> None:
    buffer = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("Harbour exports rose.")
    document.save(buffer)
    data = buffer.getvalue()
    assert _load_error("cut.docx", data[: len(data) // 2]).startswith("corrupt docx")


def test_text_with_many_no_break_spaces_is_text() -> None:
    # Web text copied into .txt files is full of U+00A0; it is not binary.
    text = "因此，我们提出一种方法\u00a0\u00a0来缩小性能差距。\u00a0" * 20
    doc = parse_document(Path("nbsp.txt"), text.encode("utf-8"), "nbsp")
    assert "缩小性能差距" in doc.text
