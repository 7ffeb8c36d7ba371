from django.urls import path

from threads import views

app_name = "threads"

urlpatterns = [
    path("", views.session_list, name="session-list"),
]
