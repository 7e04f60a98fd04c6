"""The web pages: the notebook list, a notebook (its sources and its chat), and their forms.

Pages read through `notebooks.selectors` (another user's notebook is a 404) and write through
`notebooks.services`; every form posts, then redirects. The chat panel talks to the chat API
from the browser (see `chat_sessions/static/chat_sessions/chat.js`).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_POST

from notebooks import selectors, services
from notebooks.forms import NotebookForm, NotebookRenameForm, SourceFileForm, SourceTextForm
from notebooks.models import Notebook, ParseStatus
from notebooks.uploads import UploadRejected


def _notebook_or_404(request: HttpRequest, notebook_id: Any) -> Notebook:
    notebook = selectors.notebook_get(user=request.user, notebook_id=notebook_id)
    if notebook is None:
        raise Http404("No such notebook.")
    return notebook


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


@login_required
@require_http_methods(["GET", "POST"])
def notebook_list(request: HttpRequest) -> HttpResponse:
    """The user's notebooks, most recently changed first, and the form that creates one."""
    form = NotebookForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        notebook = services.notebook_create(owner=request.user, **form.cleaned_data)
        messages.success(request, f"Notebook “{notebook.name}” created.")
        return redirect("notebook-page", notebook_id=notebook.pk)
    context = {"notebooks": selectors.notebook_list(user=request.user), "form": form}
    return render(request, "notebooks/notebook_list.html", context, status=400 if form.errors else 200)


def _notebook_page(request: HttpRequest, notebook: Notebook, *, status: int = 200, **forms: Any) -> HttpResponse:
    context = {
        "notebook": notebook,
        "sources": selectors.source_list(notebook=notebook),
        "text_form": forms.get("text_form") or SourceTextForm(),
        "file_form": forms.get("file_form") or SourceFileForm(),
        "rename_form": forms.get("rename_form") or NotebookRenameForm(initial={"name": notebook.name}),
        "chat_api_url": reverse("chat_sessions:session-list", kwargs={"container_id": notebook.pk}),
        # sources.js shows the statuses it polls for in the same words as the page.
        "parse_status_labels": json.dumps({value: str(label) for value, label in ParseStatus.choices}),
        "source_poll_ms": round(settings.SOURCE_STATUS_POLL_SECONDS * 1000),
    }
    return render(request, "notebooks/notebook_detail.html", context, status=status)


@login_required
@ensure_csrf_cookie  # chat.js reads the token from the cookie for its API writes
@require_http_methods(["GET"])
def notebook_page(request: HttpRequest, notebook_id: Any) -> HttpResponse:
    """One notebook: its sources on one side, its chat sessions as tabs on the other."""
    return _notebook_page(request, _notebook_or_404(request, notebook_id))


@login_required
@require_POST
def notebook_rename(request: HttpRequest, notebook_id: Any) -> HttpResponse:
    notebook = _notebook_or_404(request, notebook_id)
    form = NotebookRenameForm(request.POST)
    if not form.is_valid():
        return _notebook_page(request, notebook, status=400, rename_form=form)
    services.notebook_update(notebook=notebook, name=form.cleaned_data["name"])
    messages.success(request, "Notebook renamed.")
    return redirect(_safe_next(request, reverse("notebook-page", kwargs={"notebook_id": notebook.pk})))


@login_required
@require_http_methods(["GET", "POST"])
def notebook_delete(request: HttpRequest, notebook_id: Any) -> HttpResponse:
    """GET asks for confirmation; POST deletes the notebook with its sources and chats."""
    notebook = _notebook_or_404(request, notebook_id)
    if request.method == "POST":
        name = notebook.name
        services.notebook_delete(notebook=notebook)
        messages.success(request, f"Notebook “{name}” deleted.")
        return redirect("notebook-list")
    return render(request, "notebooks/notebook_confirm_delete.html", {"notebook": notebook})


@login_required
@require_POST
def source_add_text(request: HttpRequest, notebook_id: Any) -> HttpResponse:
    notebook = _notebook_or_404(request, notebook_id)
    form = SourceTextForm(request.POST)
    if not form.is_valid():
        return _notebook_page(request, notebook, status=400, text_form=form)
    source = services.source_create_text(notebook=notebook, **form.cleaned_data)
    messages.success(request, f"Source “{source.title}” added.")
    return redirect("notebook-page", notebook_id=notebook.pk)


@login_required
@require_POST
def source_add_file(request: HttpRequest, notebook_id: Any) -> HttpResponse:
    notebook = _notebook_or_404(request, notebook_id)
    form = SourceFileForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            source = services.source_create_file(notebook=notebook, upload=form.cleaned_data["file"])
        except UploadRejected as exc:
            form.add_error("file", str(exc))
        else:
            messages.success(request, f"Source “{source.title}” added.")
            return redirect("notebook-page", notebook_id=notebook.pk)
    return _notebook_page(request, notebook, status=400, file_form=form)


@login_required
@require_POST
def source_delete(request: HttpRequest, notebook_id: Any, source_id: Any) -> HttpResponse:
    notebook = _notebook_or_404(request, notebook_id)
    source = selectors.source_get(notebook=notebook, source_id=source_id)
    if source is None:
        raise Http404("No such source.")
    services.source_delete(source=source)
    messages.success(request, f"Source “{source.title}” removed.")
    return redirect("notebook-page", notebook_id=notebook.pk)
