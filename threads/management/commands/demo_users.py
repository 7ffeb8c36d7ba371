from django.core.management.base import BaseCommand

from threads.services.users import demo_users_ensure


class Command(BaseCommand):
    help = (
        "Create or reset the demo's two users: one allowed to archive threads, one read-only. "
        "For demos only; never run it against a production database."
    )

    def add_arguments(self, parser):
        parser.add_argument("archiver_username")
        parser.add_argument("archiver_password")
        parser.add_argument("viewer_username")
        parser.add_argument("viewer_password")

    def handle(self, *args, **options):
        demo_users_ensure(
            archiver_username=options["archiver_username"],
            archiver_password=options["archiver_password"],
            viewer_username=options["viewer_username"],
            viewer_password=options["viewer_password"],
        )
        self.stdout.write("Demo users are ready.")
