"""The notebooks and sources API: owners see and change their own, everyone else gets a 404."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from chat_sessions.tests.factories import NotebookFactory, SourceFactory
from deepsight.testing.pdf import pdf_with_text
from notebooks.models import Notebook, Source

pytestmark = pytest.mark.django_db


def test_owner_creates_lists_renames_and_deletes_a_notebook(owner_client, user):
    created = owner_client.post("/api/v1/notebooks/", {"name": "Plants", "description": "Notes"}, format="json")
    assert created.status_code == 201
    notebook_id = created.json()["id"]

    listed = owner_client.get("/api/v1/notebooks/").json()
    assert [n["name"] for n in listed["results"]] == ["Plants"]

    renamed = owner_client.patch(f"/api/v1/notebooks/{notebook_id}/", {"name": "Botany"}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Botany"

    assert owner_client.delete(f"/api/v1/notebooks/{notebook_id}/").status_code == 204
    assert not Notebook.objects.filter(pk=notebook_id).exists()


def test_the_api_root_and_each_notebook_link_where_to_go_next(owner_client, user):
    notebook = NotebookFactory(owner=user)
    base = "http://testserver/api/v1"

    root = owner_client.get("/api/v1/")
    listed = owner_client.get("/api/v1/notebooks/").json()["results"][0]
    pasted = owner_client.post(listed["links"]["sources"], {"content": "Text"}, format="json")
    sessions = owner_client.get(listed["links"]["sessions"])
    page = owner_client.get("/api/v1/", HTTP_ACCEPT="text/html").content.decode()

    assert root.json() == {
        "notebooks": f"{base}/notebooks/",
        "schema": f"{base}/schema/",
        "docs": f"{base}/docs/",
    }
    assert listed["links"] == {
        "self": f"{base}/notebooks/{notebook.id}/",
        "sources": f"{base}/notebooks/{notebook.id}/sources/",
        "sessions": f"{base}/notebooks/{notebook.id}/chat/sessions/",
    }
    assert pasted.status_code == 201
    assert sessions.status_code == 200
    assert f'href="{base}/notebooks/"' in page
    assert APIClient().get("/api/v1/").status_code in (401, 403)


def test_notebook_list_shows_only_the_users_own_notebooks(owner_client, user, other_user):
    NotebookFactory(owner=user, name="Mine")
    NotebookFactory(owner=other_user, name="Theirs")

    names = [n["name"] for n in owner_client.get("/api/v1/notebooks/").json()["results"]]

    assert names == ["Mine"]


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_another_users_notebook_is_not_found(owner_client, other_user, method):
    notebook = NotebookFactory(owner=other_user)

    response = getattr(owner_client, method)(f"/api/v1/notebooks/{notebook.id}/", {"name": "x"}, format="json")

    assert response.status_code == 404
    assert Notebook.objects.get(pk=notebook.pk).name == notebook.name


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/notebooks/"),
        ("post", "/api/v1/notebooks/"),
        ("get", "/api/v1/notebooks/{id}/"),
        ("get", "/api/v1/notebooks/{id}/sources/"),
        ("post", "/api/v1/notebooks/{id}/sources/"),
    ],
)
def test_anonymous_clients_are_refused(api_client, user, method, path):
    notebook = NotebookFactory(owner=user)

    response = getattr(api_client, method)(path.format(id=notebook.id), {}, format="json")

    assert response.status_code in (401, 403)


def test_notebook_name_is_required_and_bounded(owner_client):
    assert owner_client.post("/api/v1/notebooks/", {}, format="json").status_code == 400
    too_long = owner_client.post("/api/v1/notebooks/", {"name": "x" * 201}, format="json")
    assert too_long.status_code == 400
    assert "name" in too_long.json()


def test_notebook_refuses_fields_it_does_not_know(owner_client):
    response = owner_client.post("/api/v1/notebooks/", {"name": "A", "owner": 99}, format="json")

    assert response.status_code == 400
    assert "owner" in response.json()


def test_pasted_text_becomes_a_ready_source(owner_client, user):
    notebook = NotebookFactory(owner=user)

    response = owner_client.post(
        f"/api/v1/notebooks/{notebook.id}/sources/", {"title": "Notes", "content": "Cells divide."}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["parse_status"] in ("ready", "pending", "parsing")
    assert Source.objects.get(pk=response.json()["id"]).content == "Cells divide."


def test_uploaded_text_file_is_stored_under_a_generated_name(owner_client, user):
    notebook = NotebookFactory(owner=user)
    upload = SimpleUploadedFile("../../etc/passwd.md", b"# Heading\n\nMitochondria.", content_type="text/markdown")

    response = owner_client.post(f"/api/v1/notebooks/{notebook.id}/sources/", {"file": upload}, format="multipart")

    assert response.status_code == 201, response.json()
    source = Source.objects.get(pk=response.json()["id"])
    assert source.title == "passwd.md"
    assert ".." not in source.file.name
    assert source.file.name.endswith(f"{source.id}.md")
    assert "Mitochondria" in source.content


def _damaged_xref(pdf: bytes) -> bytes:
    """The PDF with its cross-reference table's second object entry cut short."""
    return re.sub(rb"(xref\n0 \d+\n(?:.*?\n){2}).*?\n", rb"\g<1>0000 \n", pdf)


#: (file name, its bytes (built when the test runs), what the 400 says)
UNACCEPTABLE_UPLOADS = [
    ("virus.exe", lambda: b"MZ\x90\x00", "not accepted"),
    ("empty.txt", lambda: b"", "empty"),
    ("binary.txt", lambda: b"\x00\x01\x02", "not text"),
    ("fake.pdf", lambda: b"hello", "not a PDF"),
    ("notepad.txt", lambda: "Unicode from Notepad".encode("utf-16"), "UTF-16 text; save it as UTF-8"),
    ("latin1.txt", lambda: "Café".encode("latin-1"), "not UTF-8 text"),
    ("locked.pdf", lambda: pdf_with_text("Secret", password="open sesame"), "protected by a password"),
    # Damaged files on which pypdf raises errors of Python's own, not its PdfReadError:
    ("handler.pdf", lambda: pdf_with_text("x", password="").replace(b"/Standard", b"/Custom"), "could not be read"),
    ("xref.pdf", lambda: _damaged_xref(pdf_with_text("x")), "could not be read"),
]


@pytest.mark.parametrize(
    ("name", "data", "reason"), UNACCEPTABLE_UPLOADS, ids=[name for name, *_ in UNACCEPTABLE_UPLOADS]
)
def test_unacceptable_uploads_get_a_clear_400(owner_client, user, name, data, reason):
    notebook = NotebookFactory(owner=user)

    response = owner_client.post(
        f"/api/v1/notebooks/{notebook.id}/sources/", {"file": SimpleUploadedFile(name, data())}, format="multipart"
    )

    assert response.status_code == 400
    assert reason in str(response.json())
    assert not Source.objects.exists()


@pytest.mark.parametrize(
    "encryption",
    [
        pytest.param({}, id="plain"),
        # "Protected" PDFs that open without a password: their text is readable, so it is read.
        pytest.param({"password": ""}, id="aes-256"),
        pytest.param({"password": "", "algorithm": "AES-128"}, id="aes-128"),
        pytest.param({"password": "", "algorithm": "RC4-128"}, id="rc4"),
    ],
)
def test_a_pdfs_text_is_read_when_it_opens_without_a_password(owner_client, user, encryption):
    notebook = NotebookFactory(owner=user)
    pdf = pdf_with_text("Chlorophyll absorbs red light", **encryption)
    upload = SimpleUploadedFile("paper.pdf", pdf, content_type="application/pdf")

    response = owner_client.post(f"/api/v1/notebooks/{notebook.id}/sources/", {"file": upload}, format="multipart")

    assert response.status_code == 201, response.json()
    assert Source.objects.get(pk=response.json()["id"]).content == "Chlorophyll absorbs red light"


def test_a_pdf_whose_text_spells_half_a_utf16_pair_is_stored_with_a_replacement_character(owner_client, user):
    notebook = NotebookFactory(owner=user)
    pdf = pdf_with_text("Anemone", to_unicode={"A": "D83C"})  # a broken ToUnicode map

    response = owner_client.post(
        f"/api/v1/notebooks/{notebook.id}/sources/",
        {"file": SimpleUploadedFile("flowers.pdf", pdf, content_type="application/pdf")},
        format="multipart",
    )

    assert response.status_code == 201, response.json()
    assert Source.objects.get(pk=response.json()["id"]).content == "\ufffdnemone"


def test_oversized_upload_is_refused(owner_client, user, monkeypatch):
    monkeypatch.setattr("notebooks.uploads.MAX_SOURCE_BYTES", 1024)
    monkeypatch.setattr("notebooks.uploads.upload_check.__kwdefaults__", {"max_bytes": 1024})
    notebook = NotebookFactory(owner=user)

    response = owner_client.post(
        f"/api/v1/notebooks/{notebook.id}/sources/",
        {"file": SimpleUploadedFile("big.txt", b"a" * 2048)},
        format="multipart",
    )

    assert response.status_code == 400
    assert "larger than" in str(response.json())


def test_source_needs_exactly_one_of_text_or_file(owner_client, user):
    notebook = NotebookFactory(owner=user)

    response = owner_client.post(f"/api/v1/notebooks/{notebook.id}/sources/", {"title": "x"}, format="json")

    assert response.status_code == 400


def test_a_file_name_a_browser_escaped_keeps_the_users_quotes(owner_client, user):
    notebook = NotebookFactory(owner=user)
    upload = SimpleUploadedFile("my %22quoted%22 notes%0A.md", b"# Notes")  # as Chromium sends `my "quoted" notes.md`

    response = owner_client.post(f"/api/v1/notebooks/{notebook.id}/sources/", {"file": upload}, format="multipart")

    assert response.status_code == 201, response.json()
    assert response.json()["title"] == 'my "quoted" notes.md'


def test_an_upload_of_two_files_in_one_request_is_refused_rather_than_keeping_one(owner_client, user):
    notebook = NotebookFactory(owner=user)
    first, second = SimpleUploadedFile("a.txt", b"first"), SimpleUploadedFile("b.txt", b"second")

    response = owner_client.post(
        f"/api/v1/notebooks/{notebook.id}/sources/", {"file": [first, second]}, format="multipart"
    )

    assert response.status_code == 400
    assert response.json()["file"] == ["Give this field once."]
    assert not Source.objects.exists()


def test_a_form_field_given_twice_is_refused_but_a_list_field_takes_every_value(owner_client, user):
    notebook = NotebookFactory(owner=user)
    url = f"/api/v1/notebooks/{notebook.id}/chat/sessions/"

    twice = owner_client.post(url, {"title": ["One", "Two"]}, format="multipart")
    tags = owner_client.post(url, {"title": "One", "tags": ["red", "blue"]}, format="multipart")

    assert twice.status_code == 400
    assert twice.json()["title"] == ["Give this field once."]
    assert tags.status_code == 201, tags.json()
    assert sorted(tags.json()["session"]["tags"]) == ["blue", "red"]


@pytest.mark.parametrize("method", ["get", "delete"])
def test_another_users_source_is_not_found(owner_client, other_user, method):
    source = SourceFactory(notebook=NotebookFactory(owner=other_user))

    response = getattr(owner_client, method)(f"/api/v1/notebooks/{source.notebook_id}/sources/{source.id}/")

    assert response.status_code == 404
    assert Source.objects.filter(pk=source.pk).exists()


def test_owner_deletes_a_source(owner_client, user):
    source = SourceFactory(notebook=NotebookFactory(owner=user))

    response = owner_client.delete(f"/api/v1/notebooks/{source.notebook_id}/sources/{source.id}/")

    assert response.status_code == 204
    assert not Source.objects.filter(pk=source.pk).exists()


def test_deleting_a_source_or_its_notebook_removes_the_uploaded_files(
    owner_client, user, django_capture_on_commit_callbacks
):
    notebook = NotebookFactory(owner=user)
    url = f"/api/v1/notebooks/{notebook.id}/sources/"
    uploads = [SimpleUploadedFile(f"{name}.md", b"# Notes", "text/markdown") for name in ("first", "second")]
    uploaded = [owner_client.post(url, {"file": upload}, format="multipart") for upload in uploads]
    first, second = (Source.objects.get(pk=response.json()["id"]) for response in uploaded)
    storage, names = first.file.storage, [first.file.name, second.file.name]
    assert all(storage.exists(name) for name in names)

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.delete(f"{url}{first.id}/")
    assert [storage.exists(name) for name in names] == [False, True]

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.delete(f"/api/v1/notebooks/{notebook.id}/")

    assert response.status_code == 204
    assert not storage.exists(names[1])  # the cascade deletes the row; the service, its file


def test_notebook_list_query_count_does_not_grow_with_the_page(owner_client, user, django_assert_num_queries):
    NotebookFactory.create_batch(3, owner=user)
    with django_assert_num_queries(1) as few:
        owner_client.get("/api/v1/notebooks/")
    NotebookFactory.create_batch(30, owner=user)

    with django_assert_num_queries(len(few.captured_queries)):
        response = owner_client.get("/api/v1/notebooks/")

    assert len(response.json()["results"]) == 33


def test_damaged_pdfs_are_refused_with_a_reason_never_an_error():
    """Random damage to a valid PDF, as a broken download or a hostile client makes it: every file is
    either read or refused with `UploadRejected` (a 400), whatever pypdf raises inside."""
    import random

    from notebooks.uploads import UploadRejected, upload_check

    rng = random.Random(1)  # the same files every run
    originals = [pdf_with_text("Chlorophyll absorbs red light"), pdf_with_text("Chlorophyll", password="")]
    outcomes = {"read": 0, "refused": 0}
    for _ in range(400):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[at] = rng.randrange(256)
            elif rng.random() < 0.5:
                del data[at : at + rng.randint(1, 50)]
            else:
                data[at:at] = rng.randbytes(rng.randint(1, 20))
        try:
            upload_check(SimpleUploadedFile("damaged.pdf", bytes(data)))
            outcomes["read"] += 1
        except UploadRejected:
            outcomes["refused"] += 1

    assert outcomes["read"] > 0
    assert outcomes["refused"] > 0
