# One image for web, worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 1000 deepsight
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_DEBUG=false python manage.py collectstatic --noinput -v0 \
    && mkdir -p /app/var && chown -R deepsight /app/var
USER deepsight
EXPOSE 8000
CMD ["uvicorn", "deepsight.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--http", "httptools", "--proxy-headers", "--timeout-graceful-shutdown", "20"]
