"""Who may call a route: one ``Annotated`` dependency per role check.

A route declares the check it needs (``tenant: AdminTenant``) instead of
calling a role test in its body, so each rule is decided in one place
(STYLE.md: no owner check copied into every route). A tenant route first
resolves the path's tenant (``TenantScope``: a foreign or unknown id is 404)
and only then the role (403 ``role-required``), so a stranger learns nothing
of another tenant's ids from the answer.

Principal checks: ``OperatorOnly``, ``OperatorOrAdmin``, ``TenantMember``.
Tenant checks (the path's ``tenant_id``): ``AdminTenant`` (its admin or the
operator), ``OwnAdminTenant`` (its own admin only: what the provider may not
do on the customer's behalf), ``OperatorTenant`` (the operator only).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from callvault.db.models import Tenant
from callvault.errors import ErrorId, Forbidden
from callvault.portal.auth import CurrentPrincipal, Principal, Role, TenantScope


def require_role(principal: Principal, *roles: Role) -> None:
    """403 ``role-required`` unless the principal has one of ``roles``."""
    if principal.role not in roles:
        raise Forbidden(f"this needs the role {' or '.join(roles)}", error_id=ErrorId.ROLE_REQUIRED)


def operator_only(principal: CurrentPrincipal) -> Principal:
    require_role(principal, "operator")
    return principal


OperatorOnly = Annotated[Principal, Depends(operator_only)]


def operator_or_admin(principal: CurrentPrincipal) -> Principal:
    """The operator or any tenant's admin (their own things: tokens)."""
    require_role(principal, "operator", "admin")
    return principal


OperatorOrAdmin = Annotated[Principal, Depends(operator_or_admin)]


def tenant_member(principal: CurrentPrincipal) -> Principal:
    """A tenant's own account (admin, listener, user); the operator gets 403."""
    require_role(principal, "admin", "listener", "user")
    return principal


TenantMember = Annotated[Principal, Depends(tenant_member)]


def admin_tenant(tenant: TenantScope, principal: CurrentPrincipal) -> Tenant:
    """The path's tenant, for its admin or the operator: 404 when foreign, then 403."""
    require_role(principal, "operator", "admin")
    return tenant


AdminTenant = Annotated[Tenant, Depends(admin_tenant)]


def own_admin_tenant(tenant: TenantScope, principal: CurrentPrincipal) -> Tenant:
    """The path's tenant, for its own admins only: 404 when foreign, 403 for other roles."""
    require_role(principal, "admin")
    return tenant


OwnAdminTenant = Annotated[Tenant, Depends(own_admin_tenant)]


def operator_tenant(tenant: TenantScope, principal: OperatorOnly) -> Tenant:
    """The path's tenant, for the operator only (others: 404 when foreign, else 403)."""
    return tenant


OperatorTenant = Annotated[Tenant, Depends(operator_tenant)]


def live_tenant(tenant: TenantScope, principal: CurrentPrincipal) -> Tenant:
    """LiveCenter's view: the path's tenant for its members and the operator (404 when
    foreign); which calls each sees is ``visibility.py``'s, as in Reports."""
    require_role(principal, "operator", "admin", "listener", "user")
    return tenant


LiveTenant = Annotated[Tenant, Depends(live_tenant)]


def live_recorder_tenant(tenant: TenantScope, principal: CurrentPrincipal) -> Tenant:
    """LiveCenter's record now: the tenant's admins and listeners (404 when foreign, then 403)."""
    require_role(principal, "admin", "listener")
    return tenant


LiveRecorderTenant = Annotated[Tenant, Depends(live_recorder_tenant)]
