from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("threads.api.urls")),
    path("", include("threads.urls")),
]

# Paths under /api/ get a JSON body with `detail`, as every other API error does.
handler404 = "threads.api.exceptions.not_found"
