"""Tokens (for clients) and users (for admins). The token endpoint is rate-limited per client address and
per username."""

from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ...permissions import IsAdmin
from ...services.accounts import token_create, token_issue, token_revoke, user_create, user_update
from ..errors import field_error
from ..serializers.auth import (
    CredentialsSerializer,
    TokenSerializer,
    UserCreateSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from ..throttles import AUTH_THROTTLES

User = get_user_model()


class TokenApi(APIView):
    """POST: exchange a username and password for a new API token (anyone; rate-limited); the key is shown
    this once. DELETE: revoke the token you call with (any logged-in user)."""

    throttle_classes = list(AUTH_THROTTLES)

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    def get_authenticators(self):
        # Logging in with a password needs no prior credentials (and no CSRF token from a stale session).
        request = getattr(self, "request", None)
        return [] if request is not None and request.method == "POST" else super().get_authenticators()

    @extend_schema(request=CredentialsSerializer, responses={200: TokenSerializer}, auth=[])
    def post(self, request):
        credentials = CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=credentials.validated_data["username"],
            password=credentials.validated_data["password"],
        )
        if user is None:
            raise field_error("password", "the username or password is wrong (or the account is disabled)")
        # Tokens are stored hashed, so an existing one cannot be shown again: each login gets its own.
        return Response({"token": token_create(user=user), "user": UserSerializer(user).data})

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(
                description="The token this request used is revoked (with a session: all yours)"
            )
        },
    )
    def delete(self, request):
        token = request.auth if isinstance(request.auth, AuthToken) else None
        token_revoke(user=request.user, token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    """Who you are and your role (any logged-in user)."""

    @extend_schema(responses={200: UserSerializer})
    def get(self, request):
        return Response(UserSerializer(request.user).data)


class UserListApi(ListAPIView):
    """GET: every account with its role (admin). POST: create an account with a role (admin)."""

    permission_classes = [IsAdmin]
    serializer_class = UserSerializer
    queryset = (
        User.objects.order_by("id").prefetch_related("groups", "auth_token_set").select_related("auth_token")
    )
    filter_backends = []

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def post(self, request):
        data = UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_create(**data.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class UserDetailApi(APIView):
    """Change a user's role or disable the account (admin); disabling also revokes the token."""

    permission_classes = [IsAdmin]

    @extend_schema(responses={200: UserSerializer})
    def get(self, request, pk: int):
        return Response(UserSerializer(get_object_or_404(User, pk=pk)).data)

    @extend_schema(request=UserUpdateSerializer, responses={200: UserSerializer})
    def patch(self, request, pk: int):
        user = get_object_or_404(User, pk=pk)
        data = UserUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if user == request.user and data.validated_data.get("is_active") is False:
            raise field_error("is_active", "you cannot disable your own account")
        try:
            user_update(user=user, **data.validated_data)
        except ValueError as error:  # a superuser's roles cannot be narrowed here
            raise field_error("role", str(error)) from error
        return Response(UserSerializer(User.objects.get(pk=pk)).data)


class UserTokenApi(APIView):
    """POST: issue a new token for a user, replacing all of theirs (admin). DELETE: revoke them (admin)."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={201: TokenSerializer})
    def post(self, request, pk: int):
        user = get_object_or_404(User, pk=pk, is_active=True)
        return Response({"token": token_issue(user=user), "user": UserSerializer(user).data}, status=201)

    @extend_schema(request=None, responses={204: OpenApiResponse(description="Token revoked")})
    def delete(self, request, pk: int):
        token_revoke(user=get_object_or_404(User, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
