"""Web pages of deepsight: logging in and out, the notebook list, a notebook and its forms."""

from django.contrib.auth import views as auth_views
from django.urls import path

from notebooks import views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.notebook_list, name="notebook-list"),
    path("notebooks/<uuid:notebook_id>/", views.notebook_page, name="notebook-page"),
    path("notebooks/<uuid:notebook_id>/rename/", views.notebook_rename, name="notebook-rename"),
    path("notebooks/<uuid:notebook_id>/delete/", views.notebook_delete, name="notebook-delete"),
    path("notebooks/<uuid:notebook_id>/sources/text/", views.source_add_text, name="source-add-text"),
    path("notebooks/<uuid:notebook_id>/sources/file/", views.source_add_file, name="source-add-file"),
    path(
        "notebooks/<uuid:notebook_id>/sources/<uuid:source_id>/delete/",
        views.source_delete,
        name="source-delete",
    ),
]
