"""Create (or refresh) the demo user and a notebook with a source, and say how to log in."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from notebooks import services
from notebooks.models import Notebook

DEMO_TEXT = (
    "deepsight keeps each notebook's sources in one place and lets you chat with an agent that answers "
    "from them.\n\n"
    "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make "
    "glucose and release oxygen. It happens in the chloroplasts, where chlorophyll absorbs mostly blue "
    "and red light.\n\n"
    "The light-dependent reactions split water and make ATP and NADPH. The Calvin cycle then uses them to "
    "fix carbon dioxide into sugars.\n"
)


class Command(BaseCommand):
    help = "Create the demo user and notebook (idempotent) and print the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="deepsight-demo")
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, username: str, password: str, url: str, **options):
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com"}
        )
        if created:
            user.set_password(password)
            user.is_staff = True
            user.is_superuser = True
            user.save()
        if not Notebook.objects.filter(owner=user).exists():
            notebook = services.notebook_create(
                owner=user, name="Welcome to deepsight", description="A sample notebook."
            )
            services.source_create_text(notebook=notebook, title="About photosynthesis", content=DEMO_TEXT)
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  deepsight is at {url}\n  log in as {username} / {password}"
                + ("" if created else " (unchanged if you changed it)")
                + "\n"
            )
        )
