from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = (
        "Print the REST API token of a user, creating it if the user has none. "
        "Send it as `Authorization: Token <key>`."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="The user the token acts as, with that user's permissions.")
        parser.add_argument(
            "--reset", action="store_true", help="Replace the user's token; the old one stops working."
        )

    def handle(self, *args, **options):
        User = get_user_model()
        try:
            user = User.objects.get(username=options["username"])
        except User.DoesNotExist:
            raise CommandError(
                "No user named %r. Create one first, e.g. `python manage.py createsuperuser`."
                % options["username"]
            ) from None

        if options["reset"]:
            Token.objects.filter(user=user).delete()
        token, _created = Token.objects.get_or_create(user=user)

        self.stdout.write(token.key)
