"""Pages that browse sessions and threads."""

from django.shortcuts import render
from django.urls import path

from threads.models import Session


def session_list(request):
    sessions = Session.objects.all()[:50]
    return render(request, "threads/session_list.html", {"sessions": sessions})


urlpatterns = [
    path("", session_list, name="session-list"),
]
