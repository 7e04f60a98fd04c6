"""Django settings for deepsight.

Every value comes from the environment, with a default that runs on a fresh machine: SQLite in the
project folder, an in-process cache, a Celery broker on the filesystem and the offline agent.
Production sets `DJANGO_DEBUG=false` and the rest from env; the secure options then default on.

https://docs.djangoproject.com/en/5.2/ref/settings/
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

# GENERAL
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#debug
DEBUG = env.bool("DJANGO_DEBUG", default=True)
# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key
SECRET_KEY = env(
    "DJANGO_SECRET_KEY",
    default="django-insecure-local-development-only-key-change-me-in-production",
)
# https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
# https://docs.djangoproject.com/en/5.2/ref/settings/#csrf-trusted-origins
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
TIME_ZONE = env("DJANGO_TIME_ZONE", default="UTC")
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The web process's garbage collector (deepsight/asgi.py): young-generation threshold, then how
# many collections of each generation before the next one up, as for `gc.set_threshold`.
# https://docs.python.org/3/library/gc.html#gc.set_threshold
WEB_GC_THRESHOLDS = tuple(env.list("WEB_GC_THRESHOLDS", cast=int, default=[10_000, 10, 10]))

# DATABASES
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of one failing
        # with "database is locked" when it upgrades a read lock; WAL lets readers run meanwhile.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    # CONN_MAX_AGE > 0 leaks connections under ASGI (Django ticket #33497): use the pool instead.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    pool_size = env.int("DATABASE_POOL_MAX_SIZE", default=0)
    if pool_size:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": 10}

# CACHES
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#caches
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "deepsight.cache.SharedPoolRedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# APPS
# ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "chat_sessions",
    "notebooks",
    "deepsight",
]

# Checked by deepsight.checks instead, which also accepts subclasses (those MIDDLEWARE names).
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

# Django's own middleware, as subclasses that skip the thread hand-offs ASGI would add to each
# hook that does no I/O (deepsight/async_middleware.py).
MIDDLEWARE = [
    "deepsight.async_middleware.SecurityMiddleware",
    "deepsight.middleware.SecurityHeadersMiddleware",
    "deepsight.middleware.RequestBodyLimitMiddleware",
    "deepsight.middleware.StaticFilesMiddleware",
    "deepsight.async_middleware.SessionMiddleware",
    "deepsight.async_middleware.CommonMiddleware",
    "deepsight.async_middleware.CsrfViewMiddleware",
    "deepsight.async_middleware.AuthenticationMiddleware",
    "deepsight.async_middleware.MessageMiddleware",
    "deepsight.async_middleware.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "deepsight.urls"
WSGI_APPLICATION = "deepsight.wsgi.application"
ASGI_APPLICATION = "deepsight.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# AUTHENTICATION
# ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "notebook-list"
LOGOUT_REDIRECT_URL = "login"

# STATIC AND MEDIA
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#static-files
STATIC_URL = "/static/"
STATIC_ROOT = env("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static"))
MEDIA_ROOT = env("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "deepsight.storage.StaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
# Requests larger than this are refused before a view reads them (uploads included).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# SECURITY
# ------------------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/ref/settings/#secure-ssl-redirect
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False) else None
)
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Health checks come over plain HTTP from inside the container network.
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# REQUEST LIMITS AND SECURITY HEADERS (deepsight/middleware.py)
# ------------------------------------------------------------------------------
# A request body over its limit is refused with a 413 before it is read (ASGI: while it arrives).
# Uploads (sources) get the larger limit: a 10 MB file plus the multipart envelope.
REQUEST_BODY_MAX_BYTES = env.int("DJANGO_REQUEST_BODY_MAX_BYTES", default=1024 * 1024)
REQUEST_BODY_UPLOAD_MAX_BYTES = env.int("DJANGO_REQUEST_BODY_UPLOAD_MAX_BYTES", default=11 * 1024 * 1024)
REQUEST_BODY_UPLOAD_PATHS = [
    r"^/api/v1/notebooks/[^/]+/sources/$",
    r"^/notebooks/[^/]+/sources/(?:file|text)/$",
]
# https://developer.mozilla.org/docs/Web/HTTP/Headers/Content-Security-Policy
# Scripts only from this site, never inline; the pages need nothing else.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Third-party pages need a little more: the admin, the browsable API and the API docs use inline
# styles, and the browsable API's "Log out" link one inline handler, allowed by its hash only.
CONTENT_SECURITY_POLICY_PATH_ADDITIONS = [
    (r"^/admin/", {"style-src": ["'unsafe-inline'"]}),
    (
        r"^/api/",
        {
            "style-src": ["'unsafe-inline'"],
            # onclick='document.getElementById("logoutForm").submit()' (rest_framework's optional_logout)
            "script-src": ["'unsafe-hashes'", "'sha256-tHTC1YgZ5UbAs8E2Ib4NjuSS8R05d1nfPHtbmXq05WA='"],
        },
    ),
]
SECURITY_EXTRA_HEADERS = {
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Resource-Policy": "same-origin",
}

# LOGGING
# ------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    # pypdf logs a warning for each flaw it reads past: a damaged upload would write dozens.
    "loggers": {"pypdf": {"level": "ERROR"}},
}

# DJANGO REST FRAMEWORK
# ------------------------------------------------------------------------------
# https://www.django-rest-framework.org/api-guide/settings/
REST_FRAMEWORK = {
    # The token first: DRF takes the 401's `WWW-Authenticate` scheme from the first class, so a
    # refused or missing token is a 401, not a 403 (session authentication names no scheme).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "deepsight.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's JSON parser, but a body nested past the recursion limit is a 400, not a 500.
    "DEFAULT_PARSER_CLASSES": [
        "chat_sessions.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # One way to choose a representation, the Accept header: no `?format=` override to fuzz or phish with.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_THROTTLE_RATES": {
        "chat_send": env("THROTTLE_CHAT_SEND", default="60/min"),
        "chat_create": env("THROTTLE_CHAT_CREATE", default="60/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "deepsight API",
    "DESCRIPTION": "Notebooks, their sources, and chat sessions with the notebook's agent.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "chat_sessions.models.SessionStatus",
        "MessageStatusEnum": "chat_sessions.models.MessageStatus",
        "ParseStatusEnum": "notebooks.models.ParseStatus",
    },
}

# CELERY
# ------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# With REDIS_URL, Redis is the broker and the result backend. Without it, kombu's filesystem
# transport: messages are files under var/celery/, so `make run` starts a real worker and beat
# with no server to install (one machine only; see the README, "Background jobs").
if REDIS_URL:
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
    CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
else:
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
    _celery_dir = Path(env("CELERY_FILESYSTEM_DIR", default=str(VAR_DIR / "celery")))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "broker"),
        "data_folder_out": str(_celery_dir / "broker"),
        # Broadcasts (`celery inspect`, remote control); kombu's default is relative to the cwd.
        "control_folder": str(_celery_dir / "control"),
        "processed_folder": str(_celery_dir / "processed"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem:"):
        # kombu lists these folders but never creates them; web, worker and beat all need them.
        for _folder in ("broker", "control", "processed"):
            (_celery_dir / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
# A task's message is acknowledged after it ran, and handed back when its worker process dies,
# so a killed worker neither loses nor (the tasks being idempotent) duplicates a title or a close.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = env("CELERY_BEAT_SCHEDULE_FILENAME", default=str(VAR_DIR / "celerybeat-schedule"))
_housekeeping_minutes = env.float("CHAT_HOUSEKEEPING_EVERY_MINUTES", default=5)
CELERY_BEAT_SCHEDULE = {
    # Interrupts stale streams, closes idle sessions, re-asks lost titles (chat_sessions.tasks).
    "chat-sessions-housekeeping": {
        "task": "chat_sessions.tasks.sessions_housekeeping",
        "schedule": timedelta(minutes=_housekeeping_minutes),
        # A run missed while beat or the workers were down is not worth queueing: the next one
        # does the same work.
        "options": {"expires": 60 * _housekeeping_minutes},
    },
    # Agents made from an older version of their template get the current one (notebooks.tasks).
    "notebooks-agents-outdated-update": {
        "task": "notebooks.tasks.agents_outdated_update",
        "schedule": timedelta(minutes=15),
        "options": {"expires": 60 * 15},
    },
    # RAGFlow deletions whose task was lost are asked for again (notebooks.tasks).
    "notebooks-remote-cleanups-resume": {
        "task": "notebooks.tasks.remote_cleanups_resume",
        "schedule": timedelta(minutes=15),
        "options": {"expires": 60 * 15},
    },
}

# AGENTS AND UPSTREAMS
# ------------------------------------------------------------------------------
# Base URLs come only from here, never from a request.
RAGFLOW_BASE_URL = env("RAGFLOW_BASE_URL", default="")
RAGFLOW_API_KEY = env("RAGFLOW_API_KEY", default="")
RAGFLOW_LLM_ID = env("RAGFLOW_LLM_ID", default="")
RAGFLOW_EMBEDDING_MODEL = env("RAGFLOW_EMBEDDING_MODEL", default="")  # empty: the tenant's default
RAGFLOW_TIMEOUT = env.float("RAGFLOW_TIMEOUT", default=30.0)  # seconds, for calls other than streams
RAGFLOW_STREAM_READ_TIMEOUT = env.float("RAGFLOW_STREAM_READ_TIMEOUT", default=120.0)  # idle seconds in a stream
RAGFLOW_RETRIES = env.int("RAGFLOW_RETRIES", default=3)  # for idempotent calls only
# Seconds a notebook's first answer waits for its agent, which a worker creates as the session opens.
RAGFLOW_AGENT_READY_WAIT = env.float("RAGFLOW_AGENT_READY_WAIT", default=30.0)
RAGFLOW_RETRY_BACKOFF = env.float("RAGFLOW_RETRY_BACKOFF", default=0.5)
# How often a notebook page re-reads the sources still being parsed (sources.js), in seconds.
SOURCE_STATUS_POLL_SECONDS = env.float("SOURCE_STATUS_POLL_SECONDS", default=2.0)
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="")
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_MODEL = env("OPENAI_MODEL", default="gpt-4o-mini")

# CHAT SESSIONS (the reusable app's settings; see chat_sessions/conf.py for every key)
# ------------------------------------------------------------------------------
CHAT_SESSIONS = {
    "CONTAINER_MODEL": "notebooks.Notebook",
    "ACCESS_POLICY": "notebooks.access.notebooks_for_user",
    "AGENT_BACKEND": "notebooks.agents.NotebookAgent",
    # Titles come from the LLM when one is configured, from the first question otherwise.
    "TITLE_BACKEND": "chat_sessions.agents.openai.OpenAICompatibleAgent" if OPENAI_BASE_URL else None,
    "IDLE_TIMEOUT": timedelta(hours=env.float("CHAT_IDLE_TIMEOUT_HOURS", default=24)),
    "AUTO_CLOSE_EXEMPTS_PINNED": env.bool("CHAT_AUTO_CLOSE_EXEMPTS_PINNED", default=True),
    "MAX_CONCURRENT_GENERATIONS_PER_USER": env.int("CHAT_MAX_CONCURRENT_GENERATIONS", default=4),
    "REDIS_URL": REDIS_URL,
    "OPENAI": {
        "BASE_URL": OPENAI_BASE_URL,
        "API_KEY": OPENAI_API_KEY,
        "MODEL": OPENAI_MODEL,
        "SYSTEM_PROMPT": "You are a helpful research assistant.",
    },
}

# The offline agent streams its extractive answer at this pace so the page shows it arriving.
LOCAL_AGENT_TOKEN_DELAY = env.float("LOCAL_AGENT_TOKEN_DELAY", default=0.02)
