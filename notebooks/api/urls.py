"""URLs of the notebooks API (names under the `notebooks_api` namespace)."""

from django.urls import path

from notebooks.api.views import ApiRootView, NotebookViewSet, SourceViewSet

app_name = "notebooks_api"

notebook_list = NotebookViewSet.as_view({"get": "list", "post": "create"})
notebook_detail = NotebookViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})
source_list = SourceViewSet.as_view({"get": "list", "post": "create"})
source_detail = SourceViewSet.as_view({"get": "retrieve", "delete": "destroy"})

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("notebooks/", notebook_list, name="notebook-list"),
    path("notebooks/<uuid:notebook_id>/", notebook_detail, name="notebook-detail"),
    path("notebooks/<uuid:notebook_id>/sources/", source_list, name="source-list"),
    path("notebooks/<uuid:notebook_id>/sources/<uuid:source_id>/", source_detail, name="source-detail"),
]
