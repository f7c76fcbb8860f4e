"""The operator's API on its own port: model versions, rollback, policy reload.

Every call needs `authorization: Bearer <token>`; the token comes from an owner-only file of at
least 32 characters and is compared in constant time; failed attempts are limited per address
(gateway/admin_guard.py). With no token configured every admin call is refused.
"""

from __future__ import annotations

import logging

from contract.pb import admin_pb2, admin_pb2_grpc
from gateway.admin_guard import AdminAuthInterceptor, allowed_policy_file, load_admin_token
from gateway.boundary import RequestLog, rpc
from gateway.errors import InvalidInput
from gateway.lifecycle import Activation, VersionManager
from gateway.policy import PolicyError, load_policy

logger = logging.getLogger(__name__)

__all__ = ["AdminAuthInterceptor", "AdminService", "load_admin_token"]


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
        settings = self.manager.settings
        source = allowed_policy_file(path, settings.policy_path, settings.policy_dir, settings.policy_max_bytes)
        try:
            policy = load_policy(source)
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
