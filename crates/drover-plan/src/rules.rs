//! Value rules: the shapes AWS and drover accept for names, regions, ARNs and durations.
//!
//! Each check returns `Err(message)` saying what is wrong; the caller attaches the location.

use std::time::Duration;

/// Region prefixes (the part before the direction) by partition.
const PARTITIONS: &[(&str, &str)] = &[
    ("us-gov", "aws-us-gov"),
    ("us-isob", "aws-iso-b"),
    ("us-isof", "aws-iso-f"),
    ("us-iso", "aws-iso"),
    ("eu-isoe", "aws-iso-e"),
    ("eusc-de", "aws-eusc"),
    ("cn", "aws-cn"),
    ("us", "aws"),
    ("eu", "aws"),
    ("ap", "aws"),
    ("sa", "aws"),
    ("ca", "aws"),
    ("me", "aws"),
    ("af", "aws"),
    ("il", "aws"),
    ("mx", "aws"),
];

const DIRECTIONS: &[&str] = &[
    "north",
    "south",
    "east",
    "west",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// Checks a region name: `<prefix>-<direction>-<number>` with a known prefix.
pub(crate) fn check_region(s: &str) -> Result<(), String> {
    let shape = || {
        format!(
            "`{s}` is not a region name: expected the shape `xx-direction-N`, like `us-east-1` \
             or `eu-central-2`"
        )
    };
    let (rest, number) = s.rsplit_once('-').ok_or_else(shape)?;
    if number.is_empty() || number.len() > 2 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(shape());
    }
    let (prefix, direction) = rest.rsplit_once('-').ok_or_else(shape)?;
    if !DIRECTIONS.contains(&direction) {
        return Err(shape());
    }
    if !PARTITIONS.iter().any(|(p, _)| *p == prefix) {
        return Err(format!("`{s}` is not in a known AWS partition (unknown prefix `{prefix}`)"));
    }
    Ok(())
}

/// The ARN partition of a region that passed [`check_region`].
pub(crate) fn partition_of(region: &str) -> &'static str {
    let prefix = region.rsplit_once('-').and_then(|(r, _)| r.rsplit_once('-')).map(|(p, _)| p);
    PARTITIONS.iter().find(|(p, _)| Some(*p) == prefix).map_or("aws", |(_, part)| part)
}

/// Plan names: `[a-z0-9-]{1,40}`.
pub(crate) fn check_plan_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 40 {
        return Err(format!("plan name `{s}` must be 1 to 40 characters long"));
    }
    if let Some(c) =
        s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "plan name `{s}` contains `{c}`: only lowercase letters, digits and `-` are allowed"
        ));
    }
    Ok(())
}

/// DynamoDB table names: 3 to 255 of `[a-zA-Z0-9_.-]`.
///
/// # Errors
/// A sentence saying what is wrong with the name.
pub fn check_table_name(s: &str) -> Result<(), String> {
    if s.len() < 3 || s.len() > 255 {
        return Err(format!("table name `{s}` must be 3 to 255 characters long"));
    }
    if let Some(c) = s.chars().find(|c| !is_table_name_char(*c)) {
        return Err(format!(
            "table name `{s}` contains `{c}`: only letters, digits, `_`, `.` and `-` are allowed"
        ));
    }
    Ok(())
}

pub(crate) fn is_table_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// AWS Backup vault names: `^[a-zA-Z0-9\-_]{2,50}$`.
pub(crate) fn check_vault_name(s: &str) -> Result<(), String> {
    let ok = (2..=50).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a backup vault name: 2 to 50 letters, digits, `-` or `_` \
             (pattern `^[a-zA-Z0-9\\-_]{{2,50}}$`)"
        ))
    }
}

/// AWS account ids: 12 digits.
pub(crate) fn check_account_id(s: &str) -> Result<(), String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("`{s}` is not an AWS account id: expected 12 digits"))
    }
}

/// DynamoDB attribute names (for TTL and canary keys): 1 to 255 bytes.
pub(crate) fn check_attribute_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        Err(format!("attribute name `{s}` must be 1 to 255 bytes long"))
    } else {
        Ok(())
    }
}

/// The parts of an ARN: `arn:partition:service:region:account:resource`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Arn<'a> {
    pub(crate) partition: &'a str,
    pub(crate) service: &'a str,
    pub(crate) region: &'a str,
    pub(crate) account: &'a str,
    pub(crate) resource: &'a str,
}

pub(crate) fn split_arn(s: &str) -> Option<Arn<'_>> {
    let mut parts = s.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let arn = Arn {
        partition: parts.next()?,
        service: parts.next()?,
        region: parts.next()?,
        account: parts.next()?,
        resource: parts.next()?,
    };
    arn.partition.starts_with("aws").then_some(arn)
}

/// IAM role ARNs: `arn:<partition>:iam::<account>:role/<path/>name`.
pub(crate) fn check_role_arn(s: &str) -> Result<Arn<'_>, String> {
    let bad = || {
        format!(
            "`{s}` is not an IAM role ARN: expected \
             `arn:aws:iam::123456789012:role/name` (path optional)"
        )
    };
    let arn = split_arn(s).ok_or_else(bad)?;
    let name = arn.resource.strip_prefix("role/").ok_or_else(bad)?;
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        });
    if arn.service != "iam" || !arn.region.is_empty() || check_account_id(arn.account).is_err() {
        return Err(bad());
    }
    if !name_ok {
        return Err(format!("`{s}` has an invalid role name `{name}`"));
    }
    Ok(arn)
}

/// STS external ids (`AssumeRole`'s `ExternalId`): 2 to 1224 of `[\w+=,.@:/-]`.
pub(crate) fn check_external_id(s: &str) -> Result<(), String> {
    if !(2..=1224).contains(&s.len()) {
        return Err(format!(
            "an external id is 2 to 1224 characters long, this one {}",
            s.chars().count()
        ));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(*c))) {
        return Err(format!(
            "the external id contains `{c}`: STS allows letters, digits and `_ + = , . @ : / -`"
        ));
    }
    Ok(())
}

/// The shortest and longest sessions STS `AssumeRole` grants (`DurationSeconds`, 900..43200).
pub(crate) const SESSION_DURATIONS: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(15 * 60)..=Duration::from_secs(12 * 3600);

/// Whether `key` names an AWS-managed KMS key by its alias (`alias/aws/...`, bare or as an
/// alias ARN). AWS-managed keys cannot be shared with another account.
pub(crate) fn is_aws_managed_alias(key: &str) -> bool {
    let alias = split_arn(key).filter(|arn| arn.service == "kms").map_or(key, |arn| arn.resource);
    alias.starts_with("alias/aws/")
}

/// KMS key ARNs: `arn:<partition>:kms:<region>:<account>:key/<key id>`.
pub(crate) fn check_kms_key_arn(s: &str) -> Result<Arn<'_>, String> {
    let bad = || {
        format!(
            "`{s}` is not a KMS key ARN: expected \
             `arn:aws:kms:<region>:<account>:key/<key id>`"
        )
    };
    let arn = split_arn(s).ok_or_else(bad)?;
    if arn.service != "kms" || check_account_id(arn.account).is_err() {
        return Err(bad());
    }
    if arn.resource.starts_with("alias/") {
        return Err(format!(
            "`{s}` is an alias ARN: restores need the key ARN (`...:key/<key id>`); \
             look it up with `aws kms describe-key --key-id {s}`"
        ));
    }
    let id = arn.resource.strip_prefix("key/").ok_or_else(bad)?;
    if !(is_uuid(id) || is_mrk_id(id)) {
        return Err(format!(
            "`{id}` is not a KMS key id: expected a UUID or a multi-Region id `mrk-<32 hex>`"
        ));
    }
    check_region(arn.region)?;
    Ok(arn)
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_mrk_id(s: &str) -> bool {
    s.strip_prefix("mrk-")
        .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Hook names: `[A-Za-z0-9_.-]{1,64}`.
pub(crate) fn check_hook_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 {
        return Err(format!("hook name `{s}` must be 1 to 64 characters long"));
    }
    if let Some(c) = s.chars().find(|c| !is_table_name_char(*c)) {
        return Err(format!(
            "hook name `{s}` contains `{c}`: only letters, digits, `_`, `.` and `-` are allowed"
        ));
    }
    Ok(())
}

/// EventBridge event bus names (`PutEvents`' `EventBusName`): 1 to 256 of `[A-Za-z0-9._/-]`.
fn is_event_bus_name(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

/// An EventBridge event bus: its name, or its ARN
/// `arn:<partition>:events:<region>:<account>:event-bus/<name>` in `region` (the region drover
/// sends the events in) when that is known.
pub(crate) fn check_event_bus(s: &str, region: Option<&str>) -> Result<(), String> {
    if !s.starts_with("arn:") {
        return if is_event_bus_name(s) {
            Ok(())
        } else {
            Err(format!(
                "`{s}` is not an event bus name: 1 to 256 letters, digits, `.`, `_`, `-` or `/` \
                 (or the bus's ARN)"
            ))
        };
    }
    let bad = || {
        format!(
            "`{s}` is not an event bus ARN: expected \
             `arn:aws:events:<region>:<account>:event-bus/<name>`"
        )
    };
    let arn = split_arn(s).ok_or_else(bad)?;
    let name = arn.resource.strip_prefix("event-bus/").ok_or_else(bad)?;
    if arn.service != "events" || check_account_id(arn.account).is_err() {
        return Err(bad());
    }
    check_region(arn.region).map_err(|_| bad())?;
    if !is_event_bus_name(name) {
        return Err(format!(
            "`{s}` has an invalid event bus name `{name}`: 1 to 256 letters, digits, `.`, `_`, \
             `-` or `/`"
        ));
    }
    if arn.partition != partition_of(arn.region) {
        return Err(format!(
            "`{s}` is in partition `{}`, but its region `{}` is in `{}`",
            arn.partition,
            arn.region,
            partition_of(arn.region)
        ));
    }
    if let Some(region) = region.filter(|r| *r != arn.region) {
        return Err(format!(
            "the event bus `{s}` is in {}, but drover sends its events in {region} \
             (`notify.eventbridge.region`)",
            arn.region
        ));
    }
    Ok(())
}

/// SNS topic ARNs: `arn:<partition>:sns:<region>:<account>:<name>`, the name 1 to 256 of
/// `[A-Za-z0-9_-]`.
pub(crate) fn check_topic_arn(s: &str) -> Result<Arn<'_>, String> {
    let bad = || {
        format!(
            "`{s}` is not an SNS topic ARN: expected \
             `arn:aws:sns:<region>:<account>:<topic name>`"
        )
    };
    let arn = split_arn(s).ok_or_else(bad)?;
    if arn.service != "sns" || check_account_id(arn.account).is_err() {
        return Err(bad());
    }
    check_region(arn.region).map_err(|_| bad())?;
    if arn.partition != partition_of(arn.region) {
        return Err(format!(
            "`{s}` is in partition `{}`, but its region `{}` is in `{}`",
            arn.partition,
            arn.region,
            partition_of(arn.region)
        ));
    }
    let name = arn.resource;
    if name.contains(':') {
        return Err(format!(
            "`{s}` is a subscription ARN, not a topic's: the topic's ARN ends at its name"
        ));
    }
    let name_ok = (1..=256).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if !name_ok {
        return Err(format!(
            "`{s}` has an invalid topic name `{name}`: 1 to 256 letters, digits, `_` or `-`"
        ));
    }
    Ok(arn)
}

/// Durations: one or more `<number><unit>` with units `s`, `m`, `h`, `d` (`90m`, `1h30m`).
///
/// # Errors
/// A message saying what is wrong with `s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`{s}` is not a duration: write a number and a unit (s, m, h, d), like `90m` or `1h30m`"
        )
    };
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut last_unit = u64::MAX;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        if digits.is_empty() || unit >= last_unit {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        digits.clear();
        last_unit = unit;
    }
    if !digits.is_empty() || last_unit == u64::MAX {
        return Err(bad());
    }
    if total == 0 {
        return Err(format!("`{s}` is zero: an objective must be longer than that"));
    }
    Ok(Duration::from_secs(total))
}

/// Placeholders a drill table name template may use.
pub(crate) const TEMPLATE_PLACEHOLDERS: &[&str] = &["table", "run", "region"];

/// Placeholders a recover's table name template may use (`drover recover --name-template`).
pub const RECOVER_PLACEHOLDERS: &[&str] = &["table", "time", "run", "region"];

/// The literal parts and placeholders of a template, or what is wrong with it.
pub(crate) fn split_template(s: &str) -> Result<Vec<TemplatePart<'_>>, String> {
    split_template_of(s, TEMPLATE_PLACEHOLDERS)
}

/// Checks a recover's table name template: the placeholders of [`RECOVER_PLACEHOLDERS`],
/// `{table}` among them (else every table would get the same name), and literal parts of the
/// characters table names allow.
///
/// # Errors
/// A sentence saying what is wrong with the template.
pub fn check_recover_template(s: &str) -> Result<(), String> {
    let parts = split_template_of(s, RECOVER_PLACEHOLDERS)?;
    if !parts.contains(&TemplatePart::Placeholder("table")) {
        return Err(format!(
            "template `{s}` has no `{{table}}`: every table would get the same name"
        ));
    }
    for p in &parts {
        if let TemplatePart::Text(t) = p
            && let Some(c) = t.chars().find(|c| !is_table_name_char(*c))
        {
            return Err(format!(
                "template `{s}` contains `{c}`: table names allow only letters, digits, `_`, `.` and `-`"
            ));
        }
    }
    Ok(())
}

fn split_template_of<'a>(s: &'a str, allowed: &[&str]) -> Result<Vec<TemplatePart<'a>>, String> {
    let mut parts = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                parts.push(TemplatePart::Text(rest));
                rest = "";
            }
            Some(i) if rest.as_bytes()[i] == b'}' => {
                return Err(format!("unmatched `}}` in template `{s}`"));
            }
            Some(i) => {
                if i > 0 {
                    parts.push(TemplatePart::Text(&rest[..i]));
                }
                let after = &rest[i + 1..];
                let end =
                    after.find('}').ok_or_else(|| format!("unclosed `{{` in template `{s}`"))?;
                let name = &after[..end];
                if !allowed.contains(&name) {
                    let hint = did_you_mean(name, allowed.iter().copied())
                        .map(|m| format!(" (did you mean `{{{m}}}`?)"))
                        .unwrap_or_default();
                    let all: Vec<String> = allowed.iter().map(|a| format!("`{{{a}}}`")).collect();
                    return Err(format!(
                        "unknown placeholder `{{{name}}}`{hint}; use {}",
                        join_and(&all)
                    ));
                }
                parts.push(TemplatePart::Placeholder(name));
                rest = &after[end + 1..];
            }
        }
    }
    Ok(parts)
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// One piece of a drill name template.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TemplatePart<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// The closest candidate to `word`, when it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let max = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting an adjacent transposition as one edit (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// A DynamoDB number as text: an optional sign, digits with an optional fraction, an optional
/// exponent; at most 38 significant digits (DynamoDB's precision).
pub(crate) fn check_number(s: &str) -> Result<(), String> {
    let bad =
        || format!("`{s}` is not a number: write digits, like \"42\" or \"-3.5\" or \"1E+3\"");
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !digits(int) || !digits(frac) {
        return Err(bad());
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        if e.is_empty() || !digits(e) || e.len() > 3 {
            return Err(bad());
        }
    }
    let significant = format!("{int}{frac}");
    let significant = significant.trim_start_matches('0').trim_end_matches('0');
    if significant.len() > 38 {
        return Err(format!("`{s}` has more than the 38 significant digits DynamoDB keeps"));
    }
    Ok(())
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (DynamoDB's encoding of binary values in JSON).
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding.
pub(crate) fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let bad = || {
        format!("`{s}` is not base64 (A-Z, a-z, 0-9, + and /, padded with = to a multiple of 4)")
    };
    if !s.len().is_multiple_of(4) {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let bytes = s.as_bytes();
    for (ci, chunk) in bytes.chunks(4).enumerate() {
        let last = ci + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(bad());
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            let v = BASE64.iter().position(|&x| x == c).ok_or_else(bad)?;
            n = (n << 6) | u32::try_from(v).map_err(|_| bad())?;
        }
        n <<= 6 * u32::try_from(pad).map_err(|_| bad())?;
        let got = n.to_be_bytes();
        out.extend_from_slice(&got[1..4 - pad]);
    }
    Ok(out)
}

/// Checks an EventBridge bus ARN given on a command line (`--event-bus`); its region.
///
/// # Errors
/// A sentence saying what is wrong with it.
pub fn check_event_bus_arn(s: &str) -> Result<String, String> {
    if !s.starts_with("arn:") {
        return Err(format!(
            "`{s}` is not an event bus ARN: expected \
             `arn:aws:events:<region>:<account>:event-bus/<name>` (a bare name has no region)"
        ));
    }
    check_event_bus(s, None)?;
    split_arn(s).map(|a| a.region.to_owned()).ok_or_else(|| format!("`{s}` is not an ARN"))
}

/// Checks an SNS topic ARN given on a command line (`--sns-topic`).
///
/// # Errors
/// A sentence saying what is wrong with it.
pub fn check_sns_topic_arn(s: &str) -> Result<(), String> {
    check_topic_arn(s).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_dynamodb() {
        for ok in [
            "42",
            "-3.5",
            "+1",
            "0.25",
            ".5",
            "5.",
            "1E+3",
            "1e-130",
            "12345678901234567890123456789012345678",
        ] {
            assert_eq!(check_number(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-",
            "1.2.3",
            "0x10",
            "1e",
            "1e+",
            "abc",
            "1 2",
            "NaN",
            "1e1234",
            "123456789012345678901234567890123456789",
        ] {
            assert!(check_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_round_trips_and_refuses_what_is_not_base64() {
        for bytes in [&b""[..], b"a", b"ab", b"abc", b"abcd", &[0, 1, 2, 255, 254]] {
            let text = base64_encode(bytes);
            assert_eq!(base64_decode(&text).as_deref(), Ok(bytes), "{text}");
        }
        assert_eq!(base64_encode(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
        assert_eq!(base64_decode("AAEC"), Ok(vec![0, 1, 2]));
        for bad in ["A", "AAE", "AA=A", "A===", "AA==AAAA", "AA!A", "AAEC "] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions() {
        for ok in ["us-east-1", "eu-central-2", "ap-southeast-5", "us-gov-west-1", "cn-north-1"] {
            assert_eq!(check_region(ok), Ok(()), "{ok}");
        }
        for bad in ["us-east1", "useast-1", "us-east-", "xx-east-1", "US-EAST-1", "us-up-1", ""] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("cn-northwest-1"), "aws-cn");
        assert_eq!(partition_of("eu-west-1"), "aws");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in
            ["", "1", "h", "1x", "30m1h", "1h1h", "0s", "-1h", "1.5h", "99999999999999999999d"]
        {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arns() {
        let k = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(check_kms_key_arn(k).map(|a| a.region), Ok("us-west-2"));
        let mrk = "arn:aws:kms:us-west-2:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab";
        assert!(check_kms_key_arn(mrk).is_ok());
        assert!(check_kms_key_arn("arn:aws:kms:us-west-2:123456789012:alias/dr").is_err());
        assert!(check_kms_key_arn("arn:aws:kms:us-west-2:1234:key/x").is_err());
        assert!(check_role_arn("arn:aws:iam::123456789012:role/svc/drover-backup").is_ok());
        assert!(check_role_arn("arn:aws:iam:us-east-1:123456789012:role/x").is_err());
        assert!(check_role_arn("arn:aws:iam::123456789012:user/x").is_err());
    }

    #[test]
    fn hook_names() {
        for ok in ["a", "read-an-order", "app_smoke.v2", &"x".repeat(64)] {
            assert_eq!(check_hook_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "has space", "a/b", "é", &"x".repeat(65)] {
            assert!(check_hook_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_buses() {
        let arn = "arn:aws:events:us-east-1:123456789012:event-bus/dr";
        for (ok, region) in [
            ("default", Some("us-east-1")),
            ("aws.partner/acme.com/123/dr", None),
            (arn, Some("us-east-1")),
            (arn, None),
            ("arn:aws-cn:events:cn-north-1:123456789012:event-bus/x", Some("cn-north-1")),
        ] {
            assert_eq!(check_event_bus(ok, region), Ok(()), "{ok}");
        }
        for (bad, region) in [
            ("", None),
            ("has space", None),
            (&"x".repeat(257), None),
            (arn, Some("us-west-2")),
            ("arn:aws:events:us-east-1:123456789012:rule/dr", None),
            ("arn:aws:sns:us-east-1:123456789012:event-bus/dr", None),
            ("arn:aws:events:us-east-1:1234:event-bus/dr", None),
            ("arn:aws:events:us-east1:123456789012:event-bus/dr", None),
            ("arn:aws:events:us-east-1:123456789012:event-bus/", None),
            ("arn:aws:events:cn-north-1:123456789012:event-bus/dr", None),
        ] {
            assert!(check_event_bus(bad, region).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_arns() {
        let ok = "arn:aws:sns:us-east-1:123456789012:dr-alerts";
        assert_eq!(check_topic_arn(ok).map(|a| a.region), Ok("us-east-1"));
        assert!(check_topic_arn("arn:aws-us-gov:sns:us-gov-west-1:123456789012:a_b").is_ok());
        for bad in [
            "dr-alerts",
            "arn:aws:sns:us-east-1:123456789012:",
            "arn:aws:sns:us-east-1:123456789012:dr-alerts:6f8e1c2a-1111-2222-3333-444455556666",
            "arn:aws:sns:us-east-1:123456789012:dr.alerts",
            "arn:aws:sqs:us-east-1:123456789012:dr-alerts",
            "arn:aws:sns::123456789012:dr-alerts",
            "arn:aws:sns:us-east-1:12345678901:dr-alerts",
            "arn:aws-cn:sns:us-east-1:123456789012:dr-alerts",
            &format!("arn:aws:sns:us-east-1:123456789012:{}", "x".repeat(257)),
        ] {
            assert!(check_topic_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn external_ids_follow_sts() {
        for ok in ["ab", "drover-7f3a", "a_b+c=d,e.f@g:h/i-j", &"x".repeat(1224)] {
            assert_eq!(check_external_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a", "has space", "é1", "a#b", &"x".repeat(1225)] {
            assert!(check_external_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aws_managed_aliases() {
        for managed in ["arn:aws:kms:eu-west-1:222222222222:alias/aws/dynamodb", "alias/aws/backup"]
        {
            assert!(is_aws_managed_alias(managed), "{managed}");
        }
        for other in [
            "arn:aws:kms:eu-west-1:222222222222:alias/dr",
            "arn:aws:kms:eu-west-1:222222222222:key/1111aaaa-22bb-33cc-44dd-555555eeeeee",
            "alias/awsome",
            "arn:aws:iam::222222222222:alias/aws/x",
        ] {
            assert!(!is_aws_managed_alias(other), "{other}");
        }
    }

    #[test]
    fn recover_templates() {
        assert!(check_recover_template("{table}-at-{time}").is_ok());
        assert!(check_recover_template("{table}.{region}.{run}").is_ok());
        assert!(check_recover_template("x-{time}").unwrap_err().contains("no `{table}`"));
        assert!(check_recover_template("{table} {time}").unwrap_err().contains("contains ` `"));
        let e = check_recover_template("{table}-{tme}").unwrap_err();
        assert!(e.contains("did you mean `{time}`"), "{e}");
        assert!(e.contains("`{table}`, `{time}`, `{run}` and `{region}`"), "{e}");
    }

    #[test]
    fn templates() {
        assert!(split_template("{table}-drill-{run}").is_ok());
        assert!(split_template("{tabel}").unwrap_err().contains("did you mean `{table}`"));
        assert!(split_template("{table").is_err());
        assert!(split_template("table}").is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("depend_on", ["depends_on", "targets"]), Some("depends_on"));
        assert_eq!(did_you_mean("zzz", ["depends_on", "targets"]), None);
    }
}
