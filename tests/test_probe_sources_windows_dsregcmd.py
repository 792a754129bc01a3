"""dsregcmd /status parser."""
from __future__ import annotations

from conftest import shared

from auditagent.probes.sources.windows_dsregcmd import join_state, parse_dsregcmd


def test_dsregcmd_not_joined():
    parsed = parse_dsregcmd(shared("windows/identity/dsregcmd-status-not-joined.txt").read_text())
    assert parsed["Device State"]["Device Name"] == "lenovo-thinkpad"
    assert join_state(parsed) == {"entra_joined": False, "domain_joined": False, "enterprise_joined": False}
    assert parsed["Ngc Prerequisite Check"]["PreReqResult"] == "WillNotProvision"



# --------------------------------------------------------------------------- public captures

from conftest import OWN_FIXTURES  # noqa: E402

ID = OWN_FIXTURES / "public/windows/identity"


def _ds(name: str) -> dict:
    return parse_dsregcmd((ID / name).read_text(encoding="utf-8"))


def test_public_dsregcmd_hybrid_joined_device_states():
    docs = _ds("dsregcmd-status-device-state-hybrid-mslearn.txt")
    assert docs["Device State"] == {"AzureAdJoined": "YES", "EnterpriseJoined": "NO", "DomainJoined": "YES",
                                    "DomainName": "HYBRIDADFS"}
    lab = _ds("dsregcmd-status-hybrid-device-state-and-details-lab.txt")
    for parsed in (docs, lab):
        assert join_state(parsed) == {"entra_joined": True, "domain_joined": True, "enterprise_joined": False}
    assert lab["Device State"]["DomainName"] == "CORP"
    # A label at the very start of the line (no padding) is still a label.
    assert lab["Device Details"]["DeviceCertificateValidity"] == \
        "[ 2026-09-09 13:43:37.000 UTC -- 2036-09-09 14:13:37.000 UTC ]"
    assert lab["Device Details"]["DeviceAuthStatus"] == "SUCCESS" and lab["Device Details"]["TpmProtected"] == "NO"


def test_public_dsregcmd_tenant_details_give_the_tenant_id():
    tenant = _ds("dsregcmd-status-tenant-details-mslearn.txt")["Tenant Details"]
    assert tenant["TenantId"] == "aaaabbbb-0000-cccc-1111-dddd2222eeee" and tenant["TenantName"] == "HybridADFS"
    assert tenant["MdmUrl"] == "https://enrollment.manage-beta.microsoft.com/EnrollmentServer/Discovery.svc"
    assert len(tenant) == 21


def test_public_dsregcmd_sso_sections_values_with_colons():
    failed = _ds("dsregcmd-status-sso-state-prt-failure-mslearn.txt")["SSO State"]
    assert failed["AzureAdPrt"] == "NO" and failed["HTTP status"] == "400"
    assert failed["Server Error Description"] == \
        "AADSTS50126: Error validating credentials due to invalid username or password."
    assert failed["EnterprisePrtAuthority"] == "https://fs.hybridadfs.nttest.microsoft.com:443/adfs"
    lab = _ds("dsregcmd-status-sso-state-and-diagnostic-data-lab.txt")
    assert lab["SSO State"]["AzureAdPrt"] == "YES" and lab["SSO State"]["CloudTgt"] == "YES"
    assert lab["Diagnostic Data"]["KeySignTest"] == "PASSED"
    # No Device State section in these blocks: the join state is not seen, not "NO".
    assert join_state(lab) == {"entra_joined": None, "domain_joined": None, "enterprise_joined": None}


def test_public_dsregcmd_entra_joined_only_device():
    # The cloud-only join Intune-managed laptops have: Entra ID joined, no on-premises domain.
    # The block has a line holding one space between the box and the first value.
    text = (OWN_FIXTURES / "public/windows/identity/dsregcmd-status-device-state-entra-joined-only-mslearn.txt").read_text()
    assert "\n \n" in text
    parsed = parse_dsregcmd(text)
    assert parsed == {"Device State": {"AzureAdJoined": "YES", "EnterpriseJoined": "NO", "DomainJoined": "NO"}}
    assert join_state(parsed) == {"entra_joined": True, "domain_joined": False, "enterprise_joined": False}
