"""Pages that create, follow and control archive jobs."""

urlpatterns: list = []
