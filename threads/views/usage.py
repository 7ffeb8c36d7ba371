"""The token usage page and its CSV exports."""

urlpatterns: list = []
