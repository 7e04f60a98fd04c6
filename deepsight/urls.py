"""deepsight's URLs: the web pages, the admin, the REST API and its schema."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and the compose health check."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("notebooks.api.urls")),
    # The reusable chat app, with notebooks as its containers.
    path("api/v1/notebooks/<uuid:container_id>/chat/", include("chat_sessions.api.urls")),
    path("api/v1/auth/", include("rest_framework.urls", namespace="rest_framework")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script from a URL, so the page needs no inline script (CSP).
    # GET only: its HTML renderer has no template for an OPTIONS answer (that was a 500).
    path(
        "api/v1/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", http_method_names=["get", "head"]),
        name="swagger-ui",
    ),
    path("", include("notebooks.urls")),
]

# JSON under /api/, as the API's own errors; a body Django itself finds too large is a 413.
handler400 = "deepsight.error_views.bad_request"
handler404 = "deepsight.error_views.page_not_found"
handler500 = "deepsight.error_views.server_error"
