"""The operator's API on its own port: model versions, rollback, policy reload.

Every call needs `authorization: Bearer <token>`; the token comes from a file or the
MODERATION_ADMIN_TOKEN environment variable and is compared in constant time. With no token
configured every admin call is refused.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path

import grpc

from contract.pb import admin_pb2, admin_pb2_grpc
from gateway.boundary import RequestLog, rpc
from gateway.errors import InvalidInput
from gateway.lifecycle import Activation, VersionManager
from gateway.policy import PolicyError, load_policy

logger = logging.getLogger(__name__)

TOKEN_ENV = "MODERATION_ADMIN_TOKEN"


def load_admin_token(token_file: str, env=os.environ) -> str:
    if token_file:
        return Path(token_file).read_text(encoding="utf-8").strip()
    return env.get(TOKEN_ENV, "").strip()


class BearerTokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode() if token else None

    def intercept_service(self, continuation, handler_call_details):
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = str(metadata.get("authorization", "")).encode()
        if self._expected is not None and hmac.compare_digest(given, self._expected):
            return continuation(handler_call_details)
        reason = "admin token not configured on the gateway" if self._expected is None else "missing or wrong admin token"
        logger.warning("admin call %s refused: %s", handler_call_details.method, reason)

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

        return grpc.unary_unary_rpc_method_handler(deny)


class AdminService(admin_pb2_grpc.ModelAdminServicer):
    def __init__(self, manager: VersionManager, moderation_service):
        self.manager = manager
        self.moderation = moderation_service  # its policy is swapped on reload

    @rpc("admin.list", units=())
    def ListModelVersions(self, request, context, log: RequestLog):
        infos = self.manager.list_versions()
        active = next((i.version for i in infos if i.active), "")
        return admin_pb2.ListModelVersionsResponse(
            model_name=self.manager.settings.model_name, active_version=active,
            previous_version=self.manager.previous_version,
            versions=[admin_pb2.ModelVersionInfo(version=i.version, state=i.state, reason=i.reason,
                                                  active=i.active, categories=list(i.categories)) for i in infos])

    @rpc("admin.activate", units=())
    def ActivateVersion(self, request, context, log: RequestLog):
        return _activation(self.manager.activate(request.version), log)

    @rpc("admin.rollback", units=())
    def Rollback(self, request, context, log: RequestLog):
        return _activation(self.manager.rollback(), log)

    @rpc("admin.reload-policy", units=())
    def ReloadPolicy(self, request, context, log: RequestLog):
        policy = self.reload_policy(request.path)
        return admin_pb2.PolicyInfo(source=policy.source, default_threshold=policy.default_threshold,
                                    thresholds=dict(policy.thresholds))

    def reload_policy(self, path: str = ""):
        """Validates the file against the serving model's categories, then swaps it in."""
        try:
            policy = load_policy(path or self.manager.settings.policy_path)
            model = self.manager.models.peek()
            if model is not None:
                policy.check_categories(list(model.labels))
        except PolicyError as err:
            raise InvalidInput(f"policy rejected, the old one stays in force: {err}") from None
        self.moderation.policy = policy
        logger.info("policy reloaded from %s", policy.source)
        return policy


def _activation(result: Activation, log: RequestLog):
    log.outcome = f"active={result.active_version}"
    return admin_pb2.ActivationResult(active_version=result.active_version, previous_version=result.previous_version,
                                      categories=list(result.categories), load_ms=result.load_ms,
                                      switch_ms=result.switch_ms)
