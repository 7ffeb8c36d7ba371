from threads.views import archive, browse, usage

app_name = "threads"

urlpatterns = browse.urlpatterns + archive.urlpatterns + usage.urlpatterns
