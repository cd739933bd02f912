"""Cross-account recovery (issue 14): STS AssumeRole as AWS enforces it, vault access policies,
the organization and AWS Backup's global settings, cross-account copies, Vault Lock, AWS managed
keys, iam:PassRole, and fixture.py's cross-account seed and inspect."""
import json
import subprocess
import sys
from types import SimpleNamespace

import botocore.exceptions
import pytest

from harness import (ACCOUNT, DST, HERE, ROLE, SRC, Emulator, backup_job, completed_point, error_code, make_role,
                     make_table, make_vault, start_server, stop_server, wait_backup, wait_copy, wait_restore)
from test_launcher import restartable

OTHER = "111111111111"  # the DR account
OUTSIDER = "222222222222"  # in no organization
DR_VAULT = f"arn:aws:backup:{DST}:{OTHER}:backup-vault:dr"
DR_ROLE = f"arn:aws:iam::{OTHER}:role/drover-restore"


def denial(excinfo):
    err = excinfo.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def assume(emulator, role_arn, credentials=None, **kwargs):
    sts = emulator.client("sts", credentials=credentials)
    return sts.assume_role(RoleArn=role_arn, RoleSessionName=kwargs.pop("session", "drill"), **kwargs)


def organization(emulator, management=ACCOUNT, members=(OTHER,), cross_account_backup=True):
    status, org = emulator.control("/_drover/organization", {"management": management, "members": list(members)})
    assert status == 200, org
    if cross_account_backup:
        emulator.client("backup", account=management).update_global_settings(
            GlobalSettings={"isCrossAccountBackupEnabled": "true"})
    return org


def vault_policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow_copy(principal, **extra):
    return {"Effect": "Allow", "Principal": principal, "Action": "backup:CopyIntoBackupVault", "Resource": "*",
            **extra}


# ---------------------------------------------------------------- STS AssumeRole

def test_assume_role_needs_an_existing_role_that_trusts_the_caller(emulator):
    missing = f"arn:aws:iam::{OTHER}:role/nobody"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(emulator, missing)
    # the caller is what GetCallerIdentity says of the base credentials
    caller = emulator.client("sts").get_caller_identity()["Arn"]
    assert denial(e) == ("AccessDenied", f"User: {caller} is not authorized to perform: sts:AssumeRole on "
                                         f"resource: {missing}", 403)
    stranger = make_role(emulator, OTHER, "trusts-another", f"arn:aws:iam::{OUTSIDER}:root")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(emulator, stranger)
    assert denial(e)[0] == "AccessDenied" and denial(e)[2] == 403
    # the principals that name the caller: root ARN, account id, "*", the caller's own ARN
    for name, principal in (("root", f"arn:aws:iam::{ACCOUNT}:root"), ("id", ACCOUNT), ("any", "*"),
                            ("exact", caller)):
        arn = make_role(emulator, OTHER, f"by-{name}", principal)
        out = assume(emulator, arn)
        assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{OTHER}:assumed-role/by-{name}/drill"
        who = emulator.client("sts", credentials=out["Credentials"]).get_caller_identity()
        assert who["Account"] == OTHER and who["Arn"] == out["AssumedRoleUser"]["Arn"]


def test_an_explicit_deny_and_unevaluated_conditions_refuse(emulator):
    iam = emulator.client("iam", account=OTHER)
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"},
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:*"}]}
    arn = iam.create_role(RoleName="denied", AssumeRolePolicyDocument=json.dumps(doc))["Role"]["Arn"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(emulator, arn)
    assert denial(e)[0] == "AccessDenied"
    mfa = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole",
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]}
    arn = iam.create_role(RoleName="mfa", AssumeRolePolicyDocument=json.dumps(mfa))["Role"]["Arn"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(emulator, arn)
    assert denial(e)[0] == "AccessDenied"  # an Allow whose condition is not evaluated does not apply
    service = make_role(emulator, OTHER, "for-backup", service="backup.amazonaws.com")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(emulator, service)
    assert denial(e)[0] == "AccessDenied"  # a service principal is not the caller


def test_the_external_id_condition(emulator):
    arn = make_role(emulator, OTHER, "needs-id", f"arn:aws:iam::{ACCOUNT}:root", external_id="s3cr3t-id")
    for kwargs in ({}, {"ExternalId": "wrong-id"}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            assume(emulator, arn, **kwargs)
        assert denial(e)[0] == "AccessDenied"
    assert assume(emulator, arn, ExternalId="s3cr3t-id")["Credentials"]["AccessKeyId"]
    # an ExternalId sent to a role that does not ask for one is fine
    plain = make_role(emulator, OTHER, "plain", ACCOUNT)
    assert assume(emulator, plain, ExternalId="anything")["Credentials"]["AccessKeyId"]


def test_session_durations(emulator):
    short = make_role(emulator, OTHER, "short", ACCOUNT)  # MaxSessionDuration 3600 by default
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(emulator, short, DurationSeconds=3601)
    assert denial(e) == ("ValidationError",
                         "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", 400)
    long = make_role(emulator, OTHER, "long", ACCOUNT, max_session_duration=7200)
    first = assume(emulator, long, DurationSeconds=7200)["Credentials"]
    # role chaining: a role session assuming a role gets one hour at most
    chained = make_role(emulator, OUTSIDER, "chained", f"arn:aws:iam::{OTHER}:role/long",
                        max_session_duration=43200)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        assume(emulator, chained, credentials=first, DurationSeconds=7200)
    assert denial(e) == ("ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for "
                                            "roles assumed by role chaining.", 400)
    out = assume(emulator, chained, credentials=first, DurationSeconds=3600)  # the role ARN names its sessions
    assert out["AssumedRoleUser"]["Arn"].startswith(f"arn:aws:sts::{OUTSIDER}:assumed-role/chained/")
    # the model's range, checked by the service too (botocore checks it unless told not to)
    sts = emulator.client("sts", validate=False)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sts.assume_role(RoleArn=short, RoleSessionName="drill", DurationSeconds=60)
    assert denial(e)[0] == "ValidationError" and "greater than or equal to 900" in denial(e)[1]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sts.assume_role(RoleArn=short, RoleSessionName="a b")
    assert denial(e)[0] == "ValidationError" and "roleSessionName" in denial(e)[1]


def test_assumed_credentials_reach_the_roles_account(emulator):
    arn = make_role(emulator, OTHER, "drover", ACCOUNT)
    creds = assume(emulator, arn)["Credentials"]
    make_vault(emulator.client("backup", DST, account=OTHER), "dr")
    theirs = emulator.client("backup", DST, credentials=creds).list_backup_vaults()["BackupVaultList"]
    assert [v["BackupVaultArn"] for v in theirs] == [DR_VAULT]
    assert emulator.client("backup", DST).list_backup_vaults()["BackupVaultList"] == []  # not ours
    by_account = emulator.control("/_drover/calls")[1]["by_account"]
    assert by_account[OTHER]["backup:ListBackupVaults"] == 1 and by_account[ACCOUNT]["sts:AssumeRole"] == 1


# ---------------------------------------------------------------- vault access policies

def test_vault_access_policy_put_get_delete(backup):
    arn = make_vault(backup, "primary")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.get_backup_vault_access_policy(BackupVaultName="primary")
    assert error_code(e) == "ResourceNotFoundException"  # a vault without a policy
    policy = vault_policy(allow_copy({"AWS": f"arn:aws:iam::{OTHER}:root"}))
    backup.put_backup_vault_access_policy(BackupVaultName="primary", Policy=policy)
    out = backup.get_backup_vault_access_policy(BackupVaultName="primary")
    assert (out["BackupVaultName"], out["BackupVaultArn"], json.loads(out["Policy"])) == (
        "primary", arn, json.loads(policy))
    backup.delete_backup_vault_access_policy(BackupVaultName="primary")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.get_backup_vault_access_policy(BackupVaultName="primary")
    assert error_code(e) == "ResourceNotFoundException"
    for call in (backup.get_backup_vault_access_policy, backup.delete_backup_vault_access_policy):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call(BackupVaultName="nowhere")
        assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.put_backup_vault_access_policy(BackupVaultName="primary", Policy="{not json")
    assert error_code(e) == "InvalidParameterValueException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.put_backup_vault_access_policy(BackupVaultName="primary")
    assert error_code(e) == "MissingParameterValueException"


# ---------------------------------------------------------------- organization and global settings

def test_global_settings_need_an_organization_and_its_management_account(emulator, backup):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.describe_global_settings()
    assert (error_code(e), e.value.response["Error"]["Message"]) == (
        "InvalidRequestException", "Your account is not a member of an organization.")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "true"})
    assert error_code(e) == "InvalidRequestException"
    assert emulator.control("/_drover/organization") == (200, {
        "management": None, "members": [], "id": None, "global_settings": None, "last_update_time": None})
    status, org = emulator.control("/_drover/organization", {"management": OTHER, "members": [ACCOUNT]})
    assert status == 200 and org["management"] == OTHER and org["members"] == [ACCOUNT]
    assert org["id"].startswith("o-") and len(org["id"]) == 12
    out = backup.describe_global_settings()  # a member may read them
    assert out["GlobalSettings"]["isCrossAccountBackupEnabled"] == "false"
    with pytest.raises(botocore.exceptions.ClientError) as e:  # but only the management account writes
        backup.update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "true"})
    assert error_code(e) == "InvalidRequestException"
    management = emulator.client("backup", DST, account=OTHER)
    management.update_global_settings(GlobalSettings={"isCrossAccountBackupEnabled": "TRUE"})
    out = backup.describe_global_settings()
    assert out["GlobalSettings"]["isCrossAccountBackupEnabled"] == "true" and out["LastUpdateTime"]
    for bad in ({"isCrossAccountBackupEnabled": "yes"}, {"somethingElse": "true"}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            management.update_global_settings(GlobalSettings=bad)
        assert error_code(e) == "InvalidParameterValueException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        emulator.client("backup", account=OUTSIDER).describe_global_settings()
    assert error_code(e) == "InvalidRequestException"
    for bad in ({"management": "12"}, {"members": [ACCOUNT]}, {"management": ACCOUNT, "members": "x"},
                {"management": ACCOUNT, "extra": 1}):
        assert emulator.control("/_drover/organization", bad)[0] == 400
    assert emulator.control("/_drover/organization")[1]["management"] == OTHER  # unchanged
    emulator.control("/_drover/reset", {})
    assert emulator.control("/_drover/organization")[1]["management"] is None


# ---------------------------------------------------------------- cross-account copies

@pytest.fixture
def xa(emulator, ddb, backup, kms):
    """A completed point in this account's us-east-1, and a DR vault in OTHER's us-west-2 with a
    customer managed key of OTHER's."""
    src_key = kms.create_key()["KeyMetadata"]["Arn"]
    table = make_table(ddb)
    make_vault(backup, "primary", src_key)
    rp = completed_point(backup, table, "primary", Lifecycle={"DeleteAfterDays": 30})
    backup_dr = emulator.client("backup", DST, account=OTHER)
    dst_key = emulator.client("kms", DST, account=OTHER).create_key()["KeyMetadata"]["Arn"]
    assert make_vault(backup_dr, "dr", dst_key) == DR_VAULT
    return SimpleNamespace(table=table, rp=rp, dst_key=dst_key, backup_dr=backup_dr)


def copy(backup, rp, dest=DR_VAULT, role=ROLE, **kw):
    return backup.start_copy_job(RecoveryPointArn=rp, SourceBackupVaultName="primary", DestinationBackupVaultArn=dest,
                                 IamRoleArn=role, **kw)


def copied(backup, rp, **kw):
    return wait_copy(backup, copy(backup, rp, **kw)["CopyJobId"])


def test_a_cross_account_copy_lands_in_the_destination_account(emulator, backup, xa):
    organization(emulator)
    xa.backup_dr.put_backup_vault_access_policy(BackupVaultName="dr", Policy=vault_policy(
        allow_copy({"AWS": f"arn:aws:iam::{ACCOUNT}:root"})))
    job = copied(backup, xa.rp)
    assert job["State"] == "COMPLETED", job
    dest = job["DestinationRecoveryPointArn"]
    assert dest.startswith(f"arn:aws:backup:{DST}:{OTHER}:recovery-point:")
    assert job["DestinationEncryptionKeyArn"] == xa.dst_key and job["AccountId"] == ACCOUNT
    # the job stays in the source account; the point is in the destination account's vault
    assert xa.backup_dr.list_copy_jobs()["CopyJobs"] == []
    assert emulator.client("backup", DST).list_backup_vaults()["BackupVaultList"] == []
    # drover reaches it by assuming a role of the DR account, and restores there with that account's role
    creds = assume(emulator, make_role(emulator, OTHER, "drover", ACCOUNT))["Credentials"]
    dr = emulator.client("backup", DST, credentials=creds)
    point = dr.describe_recovery_point(BackupVaultName="dr", RecoveryPointArn=dest)
    assert point["EncryptionKeyArn"] == xa.dst_key and point["SourceBackupVaultArn"].endswith(":backup-vault:primary")
    restore = dr.start_restore_job(RecoveryPointArn=dest, IamRoleArn=DR_ROLE, ResourceType="DynamoDB",
                                   Metadata={"targetTableName": "orders-dr", "encryptionType": "Default"})
    assert wait_restore(dr, restore["RestoreJobId"])["Status"] == "COMPLETED"
    tables = emulator.client("dynamodb", DST, credentials=creds).list_tables()["TableNames"]
    assert tables == ["orders-dr"] and emulator.client("dynamodb", DST).list_tables()["TableNames"] == []


@pytest.mark.parametrize("case", ["no-organization", "not-a-member", "cross-account-off", "no-policy",
                                  "policy-for-another-account", "policy-denies", "another-role-of-the-account",
                                  "aws-managed-key"])
def test_refused_cross_account_copies_fail_the_job(emulator, backup, xa, case):
    policy = vault_policy(allow_copy({"AWS": ACCOUNT}))
    if case == "not-a-member":
        organization(emulator, members=[OUTSIDER])
    elif case == "cross-account-off":
        organization(emulator, cross_account_backup=False)
    elif case != "no-organization":
        organization(emulator)
    if case == "policy-for-another-account":
        policy = vault_policy(allow_copy({"AWS": f"arn:aws:iam::{OUTSIDER}:root"}))
    elif case == "policy-denies":
        policy = vault_policy(allow_copy("*"), {"Effect": "Deny", "Principal": "*", "Action": "backup:*",
                                                "Resource": "*"})
    elif case == "another-role-of-the-account":  # only the copy job's own role is its principal
        policy = vault_policy(allow_copy({"AWS": f"arn:aws:iam::{ACCOUNT}:role/someone-else"}))
    if case != "no-policy":
        xa.backup_dr.put_backup_vault_access_policy(BackupVaultName="dr", Policy=policy)
    dest = DR_VAULT
    if case == "aws-managed-key":
        make_vault(xa.backup_dr, "dr-default")  # no key of its own: aws/backup
        dest = DR_VAULT + "-default"
        xa.backup_dr.put_backup_vault_access_policy(BackupVaultName="dr-default", Policy=policy)
    out = copy(backup, xa.rp, dest=dest)  # accepted: AWS fails the job, not the call
    job = wait_copy(backup, out["CopyJobId"])
    assert job["State"] == "FAILED" and "DestinationRecoveryPointArn" not in job
    message = {
        "no-organization": "Both source and destination account must be a member of the same organization",
        "not-a-member": "Both source and destination account must be a member of the same organization",
        "cross-account-off": "isCrossAccountBackupEnabled",
        "aws-managed-key": "AWS managed key",
    }.get(case, "Access Denied trying to call AWS Backup service")
    assert message in job["StatusMessage"], job
    assert xa.backup_dr.list_recovery_points_by_backup_vault(BackupVaultName="dr")["RecoveryPoints"] == []
    if case == "aws-managed-key":  # the newest developer guide's reading, behind a knob
        emulator.control("/_drover/config", {"cross_account_aws_managed_key": "allow"})
        assert wait_copy(backup, copy(backup, xa.rp, dest=dest)["CopyJobId"])["State"] == "COMPLETED"


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ACCOUNT}, {"AWS": [f"arn:aws:iam::{OUTSIDER}:root",
                                                                                    f"arn:aws:iam::{ACCOUNT}:root"]},
                                       {"AWS": ROLE}, "org"])
def test_vault_policies_that_allow_the_source_account(emulator, backup, xa, principal):
    org = organization(emulator)
    statement = allow_copy(principal)
    if principal == "org":  # the organization-wide policy of backup-resolve-access-denied-error
        statement = allow_copy("*", Condition={"StringEquals": {"aws:PrincipalOrgID": [org["id"]]}})
    xa.backup_dr.put_backup_vault_access_policy(BackupVaultName="dr", Policy=vault_policy(statement))
    assert copied(backup, xa.rp)["State"] == "COMPLETED"


def test_roles_of_other_accounts_are_refused_at_the_call(emulator, backup, xa):
    """iam:PassRole passes roles of the caller's own account only."""
    caller = emulator.client("sts").get_caller_identity()["Arn"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        copy(backup, xa.rp, role=DR_ROLE)
    assert denial(e) == ("AccessDeniedException", f"User: {caller} is not authorized to perform: iam:PassRole on "
                                                   f"resource: {DR_ROLE}", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.start_restore_job(RecoveryPointArn=xa.rp, IamRoleArn=DR_ROLE, Metadata={"targetTableName": "x-dr"})
    assert error_code(e) == "AccessDeniedException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.start_backup_job(BackupVaultName="primary", ResourceArn=xa.table, IamRoleArn=DR_ROLE)
    assert error_code(e) == "AccessDeniedException"
    assert backup.list_copy_jobs()["CopyJobs"] == [] and backup.list_restore_jobs()["RestoreJobs"] == []


# ---------------------------------------------------------------- Vault Lock

def test_describe_backup_vault_reports_the_lock(backup):
    make_vault(backup, "locked")
    assert backup.describe_backup_vault(BackupVaultName="locked")["Locked"] is False
    backup.put_backup_vault_lock_configuration(BackupVaultName="locked", MinRetentionDays=7, MaxRetentionDays=90,
                                               ChangeableForDays=3)
    out = backup.describe_backup_vault(BackupVaultName="locked")
    assert (out["Locked"], out["MinRetentionDays"], out["MaxRetentionDays"]) == (True, 7, 90)
    assert out["LockDate"].timestamp() > out["CreationDate"].timestamp() + 3 * 86400 - 60


def test_a_locked_vault_refuses_to_delete_its_points(backup, ddb):
    table = make_table(ddb)
    make_vault(backup, "primary")
    rp = completed_point(backup, table, "primary", Lifecycle={"DeleteAfterDays": 30})
    backup.put_backup_vault_lock_configuration(BackupVaultName="primary", MinRetentionDays=7)  # governance mode
    with pytest.raises(botocore.exceptions.ClientError) as e:
        backup.delete_recovery_point(BackupVaultName="primary", RecoveryPointArn=rp)
    assert error_code(e) == "InvalidRequestException" and "Vault Lock" in e.value.response["Error"]["Message"]
    backup.delete_backup_vault_lock_configuration(BackupVaultName="primary")  # no lock date: removable
    backup.delete_recovery_point(BackupVaultName="primary", RecoveryPointArn=rp)


@pytest.mark.parametrize("lifecycle,state", [
    (None, "FAILED"), ({"DeleteAfterDays": 6}, "FAILED"), ({"DeleteAfterDays": 7}, "COMPLETED"),
    ({"DeleteAfterDays": 90}, "COMPLETED"), ({"DeleteAfterDays": 91}, "FAILED"), ({"DeleteAfterDays": -1}, "FAILED")])
def test_a_locked_vault_fails_backups_outside_its_retention(backup, ddb, lifecycle, state):
    table = make_table(ddb)
    make_vault(backup, "primary")
    backup.put_backup_vault_lock_configuration(BackupVaultName="primary", MinRetentionDays=7, MaxRetentionDays=90)
    job = wait_backup(backup, backup_job(backup, table, "primary", **({"Lifecycle": lifecycle} if lifecycle else {}))[
        "BackupJobId"])
    assert job["State"] == state, job
    if state == "FAILED":
        assert "Vault Lock of backup vault primary" in job["StatusMessage"]
        assert backup.list_recovery_points_by_backup_vault(BackupVaultName="primary")["RecoveryPoints"] == []


def test_a_locked_vault_fails_copies_outside_its_retention(backup, backup_dst, ddb):
    table = make_table(ddb)
    make_vault(backup, "primary")
    rp = completed_point(backup, table, "primary", Lifecycle={"DeleteAfterDays": 30})
    make_vault(backup_dst, "dr")
    dr = f"arn:aws:backup:{DST}:{ACCOUNT}:backup-vault:dr"
    backup_dst.put_backup_vault_lock_configuration(BackupVaultName="dr", MinRetentionDays=35)
    # without a Lifecycle, the copy keeps the source's 30 days; -1 keeps the source's expiry: both too short
    for kw in ({}, {"Lifecycle": {"DeleteAfterDays": -1}}, {"Lifecycle": {"DeleteAfterDays": 34}}):
        job = copied(backup, rp, dest=dr, **kw)
        assert job["State"] == "FAILED" and "MinRetentionDays 35" in job["StatusMessage"], (kw, job)
    assert copied(backup, rp, dest=dr, Lifecycle={"DeleteAfterDays": 35})["State"] == "COMPLETED"


# ---------------------------------------------------------------- AWS managed keys

def test_aws_managed_keys_read_as_aws_managed(backup, kms, ddb):
    make_vault(backup, "default-key")
    vault = backup.describe_backup_vault(BackupVaultName="default-key")
    meta = kms.describe_key(KeyId="alias/aws/backup")["KeyMetadata"]
    assert vault["EncryptionKeyArn"] == meta["Arn"] and meta["KeyManager"] == "AWS"
    assert [v["EncryptionKeyArn"] for v in backup.list_backup_vaults()["BackupVaultList"]] == [meta["Arn"]]
    assert kms.describe_key(KeyId="alias/aws/dynamodb")["KeyMetadata"]["KeyManager"] == "AWS"
    assert kms.create_key()["KeyMetadata"]["KeyManager"] == "CUSTOMER"
    rp = backup.describe_recovery_point(BackupVaultName="default-key",
                                        RecoveryPointArn=completed_point(backup, make_table(ddb), "default-key"))
    assert rp["EncryptionKeyArn"] == meta["Arn"] and "EncryptionKeyType" not in rp  # not customer managed


# ---------------------------------------------------------------- restarts

def test_roles_sessions_organization_and_policies_survive_a_restart(tmp_path):
    args, port = restartable(tmp_path, 0.0)
    proc, _, tmp = start_server(args, port=port)
    try:
        emu = Emulator(port)
        arn = make_role(emu, OTHER, "drover", ACCOUNT)
        creds = assume(emu, arn)["Credentials"]
        organization(emu)
        backup_dr = emu.client("backup", DST, account=OTHER)
        make_vault(backup_dr, "dr")
        backup_dr.put_backup_vault_access_policy(BackupVaultName="dr", Policy=vault_policy(allow_copy("*")))
        backup_dr.put_backup_vault_lock_configuration(BackupVaultName="dr", MinRetentionDays=7)
        org = emu.control("/_drover/organization")[1]
    finally:
        assert stop_server(proc, tmp) == 0
    proc, _, tmp = start_server(args, port=port)
    try:
        emu = Emulator(port)
        assert emu.control("/_drover/organization")[1] == org
        who = emu.client("sts", credentials=creds).get_caller_identity()
        assert who["Account"] == OTHER  # the session's keys still map to the role's account
        dr = emu.client("backup", DST, credentials=creds)
        assert json.loads(dr.get_backup_vault_access_policy(BackupVaultName="dr")["Policy"])["Statement"]
        assert dr.describe_backup_vault(BackupVaultName="dr")["MinRetentionDays"] == 7
        assert assume(emu, arn)["AssumedRoleUser"]["Arn"].startswith(f"arn:aws:sts::{OTHER}:")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            assume(emu, f"arn:aws:iam::{OTHER}:role/nobody")
        assert denial(e)[0] == "AccessDenied"
    finally:
        stop_server(proc, tmp)


# ---------------------------------------------------------------- fixture.py

def fixture(emulator, command, arg):
    port = emulator.endpoint.rsplit(":", 1)[1]
    out = subprocess.run([sys.executable, f"{HERE}/fixture.py", command, port], input=json.dumps(arg),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_fixture_seeds_and_inspects_a_cross_account_setup(emulator):
    third = "333333333333"
    spec = {"source": SRC, "targets": [DST, "eu-west-1"], "source_vault": "prod", "target_vaults": {
        DST: "dr", "eu-west-1": "dr-eu"}, "tables": [{"name": "orders", "items": 3}],
        "accounts": {DST: OTHER, "eu-west-1": third},
        "roles": [{"account": OTHER, "name": "drover", "trusts": ACCOUNT, "external_id": "ext-1"},
                  {"account": third, "name": "drover", "trusts": ACCOUNT}],
        "backup_roles": [{"account": OTHER, "name": "backup"}],
        "organization": {"management": ACCOUNT, "members": [OTHER, third], "cross_account_backup": True},
        "vault_policies": {DST: {"allow_copy_from": [ACCOUNT]}},
        "vault_locks": {DST: {"min_retention_days": 7, "max_retention_days": 365}},
        "aws_managed_vault_keys": ["eu-west-1"]}
    out = fixture(emulator, "seed", spec)
    assert out["source_key"].startswith(f"arn:aws:kms:{SRC}:{ACCOUNT}:key/")
    assert out["keys"][DST].startswith(f"arn:aws:kms:{DST}:{OTHER}:key/")
    eu_key = out["keys"]["eu-west-1"]
    assert emulator.client("kms", "eu-west-1", account=third).describe_key(KeyId=eu_key)["KeyMetadata"][
        "KeyManager"] == "AWS"
    assert out["roles"] == [f"arn:aws:iam::{OTHER}:role/drover", f"arn:aws:iam::{third}:role/drover"]
    assert out["backup_roles"] == [f"arn:aws:iam::{OTHER}:role/backup"]
    assert out["organization"]["global_settings"]["isCrossAccountBackupEnabled"] == "true"
    with pytest.raises(botocore.exceptions.ClientError):
        assume(emulator, out["roles"][0])  # without the external id
    creds = assume(emulator, out["roles"][0], ExternalId="ext-1")["Credentials"]
    dr = emulator.client("backup", DST, credentials=creds)
    vault = dr.describe_backup_vault(BackupVaultName="dr")
    assert vault["EncryptionKeyArn"] == out["keys"][DST] and vault["Locked"] and vault["MaxRetentionDays"] == 365
    assert ACCOUNT in dr.get_backup_vault_access_policy(BackupVaultName="dr")["Policy"]
    trust = emulator.client("iam", account=OTHER).get_role(RoleName="backup")["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "backup.amazonaws.com"}
    # a cross-account copy of a seeded table works end to end
    backup = emulator.client("backup")
    table = f"arn:aws:dynamodb:{SRC}:{ACCOUNT}:table/orders"
    rp = completed_point(backup, table, "prod", Lifecycle={"DeleteAfterDays": 30})
    job = wait_copy(backup, backup.start_copy_job(
        RecoveryPointArn=rp, SourceBackupVaultName="prod", DestinationBackupVaultArn=DR_VAULT,
        IamRoleArn=ROLE)["CopyJobId"])
    assert job["State"] == "COMPLETED", job
    world = fixture(emulator, "inspect", {"regions": [SRC, DST], "accounts": {DST: OTHER}})
    assert world[SRC]["account"] == ACCOUNT and list(world[SRC]["tables"]) == ["orders"]
    assert world[SRC]["jobs"] == {"backup": 1, "copy": 1, "restore": 0}
    assert world[DST]["account"] == OTHER and world[DST]["points"]["dr"] == {
        job["DestinationRecoveryPointArn"]: "COMPLETED"}
    # the default account sees none of it in the DR Region
    assert fixture(emulator, "inspect", {"regions": [DST]})[DST]["points"] == {}


def test_fixture_specs_without_the_new_keys_are_unchanged(emulator):
    out = fixture(emulator, "seed", {"source": SRC, "targets": [DST], "source_vault": "prod",
                                     "target_vaults": {DST: "dr"}, "tables": [{"name": "orders", "items": 1}]})
    assert set(out) == {"keys", "source_key"}
    assert out["keys"][DST].startswith(f"arn:aws:kms:{DST}:{ACCOUNT}:key/")
    assert emulator.client("backup", DST).describe_backup_vault(BackupVaultName="dr")["Locked"] is False
