"""The web pages' forms: a notebook's name and description, and a source pasted or uploaded.

They only validate input; the page views hand the cleaned data to `notebooks.services`.
"""

from __future__ import annotations

from django import forms

from notebooks.uploads import ALLOWED_EXTENSIONS, MAX_SOURCE_BYTES


class NotebookForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)
    description = forms.CharField(max_length=2000, required=False, strip=True, widget=forms.Textarea(attrs={"rows": 2}))


class NotebookRenameForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)


class SourceTextForm(forms.Form):
    title = forms.CharField(max_length=255, required=False, strip=True)
    content = forms.CharField(max_length=1_000_000, strip=False, widget=forms.Textarea(attrs={"rows": 6}))

    def clean_content(self) -> str:
        content = self.cleaned_data["content"]
        if not content.strip():
            raise forms.ValidationError("Paste some text first.")
        return content


class SourceFileForm(forms.Form):
    file = forms.FileField(
        help_text=f"{', '.join(ALLOWED_EXTENSIONS)}; at most {MAX_SOURCE_BYTES // (1024 * 1024)} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(ALLOWED_EXTENSIONS)}),
    )
