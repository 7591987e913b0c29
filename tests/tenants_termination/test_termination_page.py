"""The operator's termination page: what goes, the token in the form, the typed name,
the receipt's download; the receipts page lists terminated tenants' receipts."""

from __future__ import annotations

import hashlib
import re

from callvault.db.models import Tenant
from tests.api.conftest import World, portal_session


def test_the_operator_terminates_a_tenant_through_the_page(world: World) -> None:
    browser = portal_session(world, "operator")
    page = f"/operator/tenants/{world.tenant_a}"
    assert 'id="termination-link"' in browser.get(page).text
    r = browser.get(f"{page}/termination")
    assert r.status_code == 200 and 'id="termination-summary"' in r.text

    r = browser.post(f"{page}/termination", data={})
    assert r.status_code == 200, r.text
    match = re.search(r'name="token" value="([^"]+)"', r.text)
    assert match is not None
    token = match.group(1)

    r = browser.post(f"{page}/termination/confirm", data={"token": token, "name": "Alfa"})
    assert r.status_code == 422 and 'data-error="termination-name-mismatch"' in r.text
    assert f'value="{token}"' in r.text  # type the name again, same token
    with world.sessions() as session:
        assert session.get(Tenant, world.tenant_a) is not None

    r = browser.post(f"{page}/termination/confirm", data={"token": token, "name": "Alpha"})
    assert r.status_code == 200 and 'id="receipt-download"' in r.text
    href = re.search(r'id="receipt-download" href="([^"]+)"', r.text)
    assert href is not None
    download = browser.get(href.group(1))
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() in r.text
    with world.sessions() as session:
        assert session.get(Tenant, world.tenant_a) is None
    listing = browser.get("/operator/deletion-receipts").text
    assert "Alpha" in listing and href.group(1) in listing


def test_the_page_is_the_operators_only(world: World) -> None:
    admin = portal_session(world, "a_admin")
    r = admin.post(f"/operator/tenants/{world.tenant_a}/termination", data={})
    assert r.status_code == 403
    assert admin.get(f"/operator/tenants/{world.tenant_a}/termination").status_code in (403, 404)
    with world.sessions() as session:
        assert session.get(Tenant, world.tenant_a) is not None
