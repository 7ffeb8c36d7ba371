from django.shortcuts import render

from threads.models import Session


def session_list(request):
    sessions = Session.objects.all()[:50]
    return render(request, "threads/session_list.html", {"sessions": sessions})
