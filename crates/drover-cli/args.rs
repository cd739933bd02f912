//! Command-line arguments (clap). Validation beyond what clap checks happens in each command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Cross-region disaster recovery for Amazon DynamoDB, as code.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Log format on stderr
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// Log level on stderr [default: info for runs off a terminal, else warn]. Below debug,
    /// the AWS SDK and its HTTP stack log errors only; RUST_LOG, when set, wins
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        value_parser = ["error", "warn", "info", "debug", "trace"]
    )]
    pub(crate) log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Plain lines (and a live progress display on a terminal)
    Text,
    /// One JSON object per line (tracing)
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check plans and report every problem (exit 0 valid, 1 invalid, 2 usage)
    Validate(ValidateArgs),
    /// Show what a run of a plan does: restore waves, steps, longest dependency chain
    Plan(PlanArgs),
    /// Print the JSON Schema of the plan format (for editors)
    Schema,
    /// Rehearse recovery: back up, copy, restore under drill names, validate, tear down
    Drill(DrillArgs),
    /// Recover for real from copies already in the target vaults (never calls the source region)
    Failover(FailoverArgs),
    /// Restore every table to one instant from point-in-time recovery, under new names, in
    /// dependency order, then configure and validate (bad data: before a corruption)
    Recover(RecoverArgs),
    /// Continue an interrupted or failed run where it stopped
    Resume(ResumeArgs),
    /// Show the state of a run (the latest one by default)
    Status(StatusArgs),
    /// List the runs in the state directory
    Runs(StateArgs),
    /// Report a run: per table and target, steps, validation, RTO/RPO achieved
    Report(ReportArgs),
    /// Delete a drill's tables (only those the run created and tagged)
    Teardown(TeardownArgs),
    /// Delete what abandoned drills of a plan left behind: drill tables and drill recovery
    /// points carrying the plan's ownership tags whose run is finished, failed or unknown to the
    /// state directory (lists them first; asks, or --yes)
    Sweep(SweepArgs),
    /// Back up every table now and copy it to every target vault (journaled, resumable)
    Backup(RunArgs),
    /// List the recovery points of each table in the source and target vaults
    Points(PointsArgs),
    /// Check that a run can start: vaults, keys, tables, names, recovery points (exit 0 or 1)
    Preflight(PreflightArgs),
    /// Readiness for a real failover: the newest recovery point of each table in each target
    /// vault against the RPO (exit 1 when any is missing or too old)
    Check(CheckArgs),
    /// Break the lease of a run on an S3 state store whose holder is gone for good (like
    /// `terraform force-unlock`); journaled. The holder, if it is alive, stops at its next record
    Unlock(UnlockArgs),
    /// Print the least-privilege IAM policies a run of the plan needs (JSON): for the operator
    /// running drover, for the role AWS Backup assumes, and that role's trust policy
    IamPolicy(IamPolicyArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct IamPolicyArgs {
    /// Plan file
    #[arg(value_name = "PLAN")]
    pub(crate) plan: PathBuf,
    /// Print only this document, as `aws iam create-policy --policy-document` takes it
    /// (default: every document in one JSON object)
    #[arg(long, value_enum, value_name = "ROLE")]
    pub(crate) role: Option<IamRole>,
    /// AWS account of the plan's source, when the plan does not pin `source.account_id` and
    /// its role and KMS key ARNs do not agree on one
    #[arg(long, value_name = "ID", value_parser = drover_aws::iam::check_account_id)]
    pub(crate) account_id: Option<String>,
    /// Only this account's documents (a plan with targets in other accounts or roles to
    /// assume); with --role, that account's document
    #[arg(long, value_name = "ID", value_parser = drover_aws::iam::check_account_id)]
    pub(crate) in_account: Option<String>,
    /// The account of the credentials that run drover, which the trust policies of the roles
    /// drover assumes name (default: the plan's account drover acts in without a role)
    #[arg(long, value_name = "ID", value_parser = drover_aws::iam::check_account_id)]
    pub(crate) operator_account: Option<String>,
    /// Print each document as a list of documents of at most 6,144 characters (a managed
    /// policy's limit), together granting the same permissions, to attach as several policies
    #[arg(long)]
    pub(crate) split: bool,
    /// Add the statements for a state store on S3 (`s3://bucket/prefix`), and for its
    /// `--state-kms-key`
    #[arg(long, value_name = "URL", env = "DROVER_STATE")]
    pub(crate) state: Option<String>,
    /// The KMS key of the state store's objects
    #[arg(long, value_name = "KEY_ARN", env = "DROVER_STATE_KMS_KEY")]
    pub(crate) state_kms_key: Option<String>,
    /// The statements for these event buses, topics and metrics too, as a run given the same
    /// flags uses them
    #[command(flatten)]
    pub(crate) notify: NotifyArgs,
}

/// Where a run's or a check's events and metrics go, besides the plan's `notify:`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct NotifyArgs {
    /// Also send events to this EventBridge bus (its ARN,
    /// `arn:aws:events:REGION:ACCOUNT:event-bus/NAME`); repeatable
    #[arg(long = "event-bus", value_name = "ARN", value_parser = parse_event_bus)]
    pub(crate) event_buses: Vec<(String, String)>,
    /// Also publish events to this SNS topic (`arn:aws:sns:REGION:ACCOUNT:NAME`); repeatable
    #[arg(long = "sns-topic", value_name = "ARN", value_parser = parse_sns_topic)]
    pub(crate) sns_topics: Vec<String>,
    /// Put CloudWatch metrics (namespace `Drover`) in each target's region: a check's
    /// recovery point ages, RPO objective and missing points; a run's RTO and outcome
    #[arg(long)]
    pub(crate) publish_metrics: bool,
}

impl NotifyArgs {
    /// The flags' channels.
    pub(crate) fn channels(&self) -> drover_engine::notify::Channels {
        drover_engine::notify::Channels {
            event_buses: self.event_buses.clone(),
            sns_topics: self.sns_topics.clone(),
        }
    }
}

fn parse_event_bus(s: &str) -> Result<(String, String), String> {
    match drover_plan::check_event_bus_arn(s) {
        Ok(region) => Ok((region, s.to_owned())),
        Err(e) => Err(e),
    }
}

fn parse_sns_topic(s: &str) -> Result<String, String> {
    drover_plan::check_sns_topic_arn(s).map(|()| s.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IamRole {
    /// The principal running drover (drill, failover, backup, resume, teardown, checks);
    /// with --in-account, what drover does in that account
    Operator,
    /// The trust policy of the role drover assumes in an account
    OperatorRoleTrust,
    /// The permissions of a role AWS Backup assumes (`iam_role_arn`)
    BackupRole,
    /// The trust policy of that role (`backup.amazonaws.com`)
    BackupRoleTrust,
    /// The access policy of a target vault in another account than the source
    VaultAccessPolicy,
    /// Statements for the key policy of a vault's KMS key (copies across accounts)
    VaultKeyPolicy,
    /// Statements for the key policy of a target's `kms_key_arn` (copies across accounts)
    KeyPolicy,
}

impl Command {
    /// A simulator option given without `--cloud sim`, where it means nothing: the message
    /// (a usage error, before anything is read).
    pub(crate) fn misused_sim_flag(&self) -> Option<String> {
        let run = |r: &RunArgs| {
            (r.cloud == CloudArg::Aws)
                .then(|| {
                    r.sim.first_given().or_else(|| r.sim_speed.is_some().then_some("--sim-speed"))
                })
                .flatten()
        };
        let flag = match self {
            Command::Plan(a) => a.cloud.misused(),
            Command::Preflight(a) => a.cloud.misused(),
            Command::Points(a) => a.cloud.misused(),
            Command::Check(a) => a.cloud.misused(),
            Command::Sweep(a) => a.cloud.misused(),
            Command::Drill(a) => run(&a.run),
            Command::Backup(a) => run(a),
            Command::Failover(a) => run(&a.run),
            _ => None,
        }?;
        Some(format!(
            "{flag} is an option of the simulated cloud; add `--cloud sim`, or drop {flag}"
        ))
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct CloudArgs {
    /// Which cloud to talk to
    #[arg(long, value_enum, default_value_t = CloudArg::Aws)]
    pub(crate) cloud: CloudArg,
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
    #[command(flatten)]
    pub(crate) sim: SimArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct PreflightArgs {
    /// Plan file
    #[arg(value_name = "PLAN")]
    pub(crate) plan: PathBuf,
    /// Which run to check for
    #[arg(long, value_enum, default_value_t = ModeArg::Drill)]
    pub(crate) mode: ModeArg,
    /// Output format
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub(crate) format: StatusFormat,
    #[command(flatten)]
    pub(crate) cloud: CloudArgs,
    /// The state store a run would use (checked when named)
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ReportArgs {
    /// The run (default: the latest)
    #[arg(value_name = "RUN_ID")]
    pub(crate) run_id: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub(crate) format: ReportFormat,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// Markdown
    Md,
    /// JSON
    Json,
    /// JUnit XML (each table and target a test case)
    Junit,
    /// A self-contained HTML page with a timeline
    Html,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct PointsArgs {
    /// Plan file
    #[arg(value_name = "PLAN")]
    pub(crate) plan: PathBuf,
    /// Only this target region (and not the source vault)
    #[arg(long, value_name = "REGION")]
    pub(crate) target: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub(crate) format: StatusFormat,
    #[command(flatten)]
    pub(crate) cloud: CloudArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct CheckArgs {
    /// Plan file
    #[arg(value_name = "PLAN")]
    pub(crate) plan: PathBuf,
    /// Check point-in-time recovery instead: per table, whether PITR is on and its restorable
    /// window against the RPO
    #[arg(long)]
    pub(crate) pitr: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub(crate) format: CheckFormat,
    /// A failed check sends a `Drover Readiness Check Failure` event (the plan's `notify:` and
    /// `--event-bus`/`--sns-topic`); a passing one sends nothing
    #[command(flatten)]
    pub(crate) notify: NotifyArgs,
    #[command(flatten)]
    pub(crate) cloud: CloudArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CheckFormat {
    /// A table for people
    Text,
    /// Machine-readable
    Json,
    /// JUnit XML: one test case per table and target
    Junit,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct StateArgs {
    /// Where runs' journals live: a directory (`.drover`, `file:DIR`) or an S3 bucket and
    /// prefix (`s3://bucket/prefix`, with `?region=REGION` or the bucket's own location), so
    /// that anyone can resume a run from anywhere [default: .drover]
    #[arg(long, value_name = "URL", env = "DROVER_STATE")]
    pub(crate) state: Option<String>,
    /// The state directory (older spelling of `--state DIR`)
    #[arg(long, value_name = "DIR", hide = true, conflicts_with = "state")]
    pub(crate) state_dir: Option<PathBuf>,
    /// KMS key that encrypts the objects drover writes to an S3 state bucket (SSE-KMS; default:
    /// the bucket's default encryption)
    #[arg(long, value_name = "KEY_ARN", env = "DROVER_STATE_KMS_KEY")]
    pub(crate) state_kms_key: Option<String>,
}

impl StateArgs {
    /// Where the state is.
    pub(crate) fn location(&self) -> Result<drover_engine::store::Location, String> {
        match (&self.state, &self.state_dir) {
            (_, Some(dir)) => Ok(drover_engine::store::Location::Dir(dir.clone())),
            (Some(url), None) => drover_engine::store::Location::parse(url),
            (None, None) => Ok(drover_engine::store::Location::Dir(PathBuf::from(".drover"))),
        }
    }
}

/// How a run holds its lease on an S3 state store.
#[derive(Debug, Clone, Args)]
pub(crate) struct LeaseArgs {
    /// How long a run's lease on an S3 state store lasts unless renewed (renewed every third
    /// of it); a run whose holder died can be resumed elsewhere once it expires
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_lease_ttl)]
    pub(crate) lease_ttl: std::time::Duration,
}

fn parse_lease_ttl(s: &str) -> Result<std::time::Duration, String> {
    let d = drover_plan::parse_duration(s)?;
    if d < std::time::Duration::from_secs(3) || d > std::time::Duration::from_secs(3600) {
        return Err("expected a duration from 3s to 1h".to_owned());
    }
    Ok(d)
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    if s == "0" || s == "0s" {
        return Ok(std::time::Duration::ZERO);
    }
    let d = drover_plan::parse_duration(s)?;
    if d > std::time::Duration::from_secs(24 * 3600) {
        return Err("expected a duration of at most 1d".to_owned());
    }
    Ok(d)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CloudArg {
    /// Amazon Web Services, through the standard credential chain
    Aws,
    /// The embedded simulated cloud (offline; seeded from the plan)
    Sim,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Plan file
    #[arg(value_name = "PLAN")]
    pub(crate) plan: PathBuf,
    /// Which cloud to run against
    #[arg(long, value_enum, default_value_t = CloudArg::Aws)]
    pub(crate) cloud: CloudArg,
    /// Run id: 1 to 64 lowercase letters, digits or `-` (default: generated from the plan
    /// name and the time). Drill table names carry its short id: its last 8 characters when
    /// they are hex digits after a `-` (as generated ids end), else 8 derived from the id
    #[arg(long, value_name = "ID")]
    pub(crate) run_id: Option<String>,
    /// Start without the preflight checks
    #[arg(long)]
    pub(crate) skip_preflight: bool,
    /// How long after writing the drill marker and taking a source digest the backup starts
    /// (default 1m: DynamoDB guarantees a backup holds writes committed a minute before it is
    /// requested). Lower it only against an emulator that documents a shorter lag
    #[arg(long, value_name = "DURATION", value_parser = parse_backup_settle)]
    pub(crate) backup_settle: Option<u64>,
    /// The first and shortest wait between two polls of a job or a table, e.g. 500ms
    /// (default 2s). Shorter polls notice the end of short jobs sooner, for more calls
    #[arg(long, value_name = "DURATION", value_parser = parse_poll_interval)]
    pub(crate) poll_interval: Option<u64>,
    /// Read capacity units per second a drill's scans of each source table may use, over the
    /// plan's `drill.source_reads` (default: 25% of provisioned capacity, 500 on demand)
    #[arg(long, value_name = "UNITS", value_parser = clap::value_parser!(u32).range(1..=40_000))]
    pub(crate) source_read_units: Option<u32>,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
    #[command(flatten)]
    pub(crate) sim: SimArgs,
    /// Simulator: how fast simulated time may run, in simulated seconds per real second, or
    /// `max` (no pacing). Default: paced so that a run lasts a few seconds. Pacing never
    /// changes a simulated run's result: simulated time advances from event to event
    #[arg(long, value_name = "X|max", value_parser = parse_sim_speed)]
    pub(crate) sim_speed: Option<SimSpeed>,
    #[command(flatten)]
    pub(crate) notify: NotifyArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    #[command(flatten)]
    pub(crate) lease: LeaseArgs,
}

/// `drover drill`: a run, and whether to keep what it restored.
#[derive(Debug, Clone, Args)]
pub(crate) struct DrillArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Keep the drill tables (no teardown; `drover teardown RUN_ID` later)
    #[arg(long)]
    pub(crate) keep: bool,
    /// Rehearse a point-in-time recovery (`drover recover`) instead of a backup, copy and
    /// restore: every table restored to one instant (default --latest) under drill names
    #[arg(long)]
    pub(crate) pitr: bool,
    #[command(flatten)]
    pub(crate) instant: InstantArgs,
    /// With --pitr: restore beside the source tables, in the source region
    #[arg(long)]
    pub(crate) into_source: bool,
}

/// The instant of a point-in-time recovery.
#[derive(Debug, Clone, Default, Args)]
#[group(multiple = false)]
pub(crate) struct InstantArgs {
    /// Restore every table as it was at this UTC time (just before the damage), e.g.
    /// 2026-11-24T10:30:00Z
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub(crate) to: Option<i64>,
    /// Restore every table as it was N minutes ago
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=50_400))]
    pub(crate) before_minutes: Option<u32>,
    /// Restore every table to the latest instant all of them can be restored to (about five
    /// minutes ago)
    #[arg(long)]
    pub(crate) latest: bool,
}

impl InstantArgs {
    /// Whether an instant was named.
    pub(crate) fn given(&self) -> bool {
        self.to.is_some() || self.before_minutes.is_some() || self.latest
    }
}

/// `drover recover`: a point-in-time recovery of every table of the plan.
#[derive(Debug, Clone, Args)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    #[command(flatten)]
    pub(crate) instant: InstantArgs,
    /// Restore beside the damaged tables, in the source region, instead of into the targets
    #[arg(long)]
    pub(crate) into_source: bool,
    /// Names of the restored tables, of `{table}`, `{time}` (the instant, 20261124T103000Z),
    /// `{run}` and `{region}` [default: {table}-at-{time}]
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "names_from_plan", value_parser = parse_recover_template)]
    pub(crate) name_template: Option<String>,
    /// Restore under the plan's own table names: a cut-over, once the damaged tables are
    /// deleted or renamed (asks for confirmation, or --yes)
    #[arg(long)]
    pub(crate) names_from_plan: bool,
    /// Do not ask for confirmation (--names-from-plan)
    #[arg(long)]
    pub(crate) yes: bool,
}

fn parse_recover_template(s: &str) -> Result<String, String> {
    drover_plan::check_recover_template(s).map(|()| s.to_owned())
}

/// How a simulated run is paced against the wall clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SimSpeed {
    /// At most this many simulated seconds per real second.
    Times(f64),
    /// As fast as the machine goes.
    Max,
}

fn parse_sim_speed(s: &str) -> Result<SimSpeed, String> {
    if s == "max" {
        return Ok(SimSpeed::Max);
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(SimSpeed::Times(x)),
        _ => Err(format!("`{s}` is not a positive number or `max`")),
    }
}

#[derive(Debug, Clone, Default, Args)]
pub(crate) struct AwsArgs {
    /// AWS: named profile of the shared config files (default: the standard credential chain)
    #[arg(long, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// AWS: one endpoint for every service in every region (emulators); also AWS_ENDPOINT_URL
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    /// AWS: endpoint for one region, over --endpoint-url (repeatable)
    #[arg(long, value_name = "REGION=URL", value_parser = parse_region_endpoint)]
    pub(crate) region_endpoint: Vec<(String, String)>,
    /// AWS: longest wait for one attempt of a call, e.g. 10s (default 30s); a timed-out call
    /// is retried
    #[arg(long, value_name = "DURATION", value_parser = parse_call_timeout)]
    pub(crate) call_timeout: Option<u64>,
}

fn parse_call_timeout(s: &str) -> Result<u64, String> {
    let d = drover_plan::parse_duration(s)?;
    if d.is_zero() || d > std::time::Duration::from_secs(600) {
        return Err("expected a duration from 1s to 10m".to_owned());
    }
    u64::try_from(d.as_millis()).map_err(|e| e.to_string())
}

fn parse_backup_settle(s: &str) -> Result<u64, String> {
    if s == "0" || s == "0s" {
        return Ok(0);
    }
    let d = drover_plan::parse_duration(s)?;
    if d > std::time::Duration::from_secs(3600) {
        return Err("expected a duration of at most 1h".to_owned());
    }
    u64::try_from(d.as_millis()).map_err(|e| e.to_string())
}

fn parse_poll_interval(s: &str) -> Result<u64, String> {
    let ms = match s.strip_suffix("ms") {
        Some(n) => {
            n.parse::<u64>().map_err(|_| format!("`{s}` is not a duration like 500ms or 2s"))?
        }
        None => {
            u64::try_from(drover_plan::parse_duration(s)?.as_millis()).map_err(|e| e.to_string())?
        }
    };
    if !(100..=60_000).contains(&ms) {
        return Err("expected a duration from 100ms to 1m".to_owned());
    }
    Ok(ms)
}

fn parse_region_endpoint(s: &str) -> Result<(String, String), String> {
    let (region, url) = s.split_once('=').ok_or("expected REGION=URL")?;
    if region.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("expected REGION=URL with an http:// or https:// URL".to_owned());
    }
    Ok((region.to_owned(), url.to_owned()))
}

impl AwsArgs {
    /// These settings over `recorded` ones (a resumed run's).
    pub(crate) fn over(&self, recorded: drover_aws::AwsOptions) -> drover_aws::AwsOptions {
        let mut region_endpoints = recorded.region_endpoints;
        region_endpoints.extend(self.region_endpoint.iter().cloned());
        drover_aws::AwsOptions {
            profile: self.profile.clone().or(recorded.profile),
            endpoint_url: self.endpoint_url.clone().or(recorded.endpoint_url),
            region_endpoints,
            emulator_credentials: recorded.emulator_credentials,
            call_timeout_ms: self.call_timeout.or(recorded.call_timeout_ms),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct FailoverArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Do not ask for confirmation
    #[arg(long)]
    pub(crate) yes: bool,
    /// Recover to the newest recovery points at or before this UTC time (before a
    /// corruption), e.g. 2026-11-24T10:30:00Z; default: the newest consistent cut
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub(crate) at: Option<i64>,
}

fn parse_at(s: &str) -> Result<i64, String> {
    drover_engine::run::parse_time(s)
}

#[derive(Debug, Clone, Args)]
pub(crate) struct LimitArgs {
    /// Concurrent restores per target region (DynamoDB allows 50)
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) max_restores: u16,
    /// Concurrent copy jobs into a target region (AWS Backup allows 100)
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) max_copies: u16,
    /// Concurrent backup jobs in the source region
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) max_backups: u16,
    /// Concurrent table operations (configure, validate, teardown) per region
    #[arg(long, value_name = "N", default_value_t = 25, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) max_table_ops: u16,
}

/// Options of the simulated cloud (`--cloud sim` only; refused otherwise).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SimArgs {
    /// Simulator: generated items per source table, canary items on top [default: 1000]
    #[arg(long, value_name = "N")]
    pub(crate) sim_items: Option<u64>,
    /// Simulator: seed of ids, durations and faults [default: 1]
    #[arg(long, value_name = "N")]
    pub(crate) sim_seed: Option<u64>,
    /// Simulator: probability that a call is throttled [default: 0]
    #[arg(long, value_name = "P")]
    pub(crate) sim_throttle: Option<f64>,
    /// Simulator: relative noise of job durations, 0 to 1 (0: every job takes the duration
    /// model's expectation, and a run takes what `drover plan --estimate --cloud sim` says)
    /// [default: 0.1]
    #[arg(long, value_name = "F")]
    pub(crate) sim_noise: Option<f64>,
}

impl CloudArgs {
    /// The simulator option given without `--cloud sim`, if any.
    fn misused(&self) -> Option<&'static str> {
        if self.cloud == CloudArg::Sim { None } else { self.sim.first_given() }
    }
}

impl SimArgs {
    /// The first simulator option given, by its flag (they mean nothing without `--cloud sim`).
    pub(crate) fn first_given(&self) -> Option<&'static str> {
        [
            (self.sim_items.is_some(), "--sim-items"),
            (self.sim_seed.is_some(), "--sim-seed"),
            (self.sim_throttle.is_some(), "--sim-throttle"),
            (self.sim_noise.is_some(), "--sim-noise"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ResumeArgs {
    /// The run to resume
    #[arg(value_name = "RUN_ID")]
    pub(crate) run_id: String,
    /// Resume even though the plan file changed since the run started
    #[arg(long)]
    pub(crate) force: bool,
    /// Override the run's AWS settings (profile, endpoint)
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    #[command(flatten)]
    pub(crate) lease: LeaseArgs,
    /// On an S3 state store, how long to wait for another process's live lease on the run to
    /// end or expire before giving up (default: refuse it at once)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_wait)]
    pub(crate) wait: std::time::Duration,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct TeardownArgs {
    /// The drill whose tables to delete
    #[arg(value_name = "RUN_ID")]
    pub(crate) run_id: String,
    /// Override the run's AWS settings (profile, endpoint)
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    #[command(flatten)]
    pub(crate) lease: LeaseArgs,
    /// On an S3 state store, how long to wait for another process's live lease on the run to
    /// end or expire before giving up (default: refuse it at once)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_wait)]
    pub(crate) wait: std::time::Duration,
}

/// `drover unlock`: break a run's lease on purpose.
#[derive(Debug, Clone, Args)]
pub(crate) struct UnlockArgs {
    /// The run whose lease to break
    #[arg(value_name = "RUN_ID")]
    pub(crate) run_id: String,
    /// The lease to break, as `resume` or `status` print it (so that only the lease you saw is
    /// broken, never one taken since)
    #[arg(long, value_name = "ID")]
    pub(crate) lease: String,
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct SweepArgs {
    /// Plan file
    #[arg(value_name = "PLAN")]
    pub(crate) plan: PathBuf,
    /// Keep anything younger than this (table or recovery point creation time), e.g. 12h, 0s
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_older_than)]
    pub(crate) older_than: u64,
    /// Only list what would be deleted and what is spared
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Delete without asking
    #[arg(long, conflicts_with = "dry_run")]
    pub(crate) yes: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub(crate) format: StatusFormat,
    /// Where to look: AWS, or the simulated worlds the state directory's `--cloud sim` runs of
    /// the plan left (`runs/<id>/sim.json`)
    #[command(flatten)]
    pub(crate) cloud: CloudArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

/// `--older-than`: a plan duration (`1d`, `12h30m`), or zero (`0s`, `0`): in milliseconds.
fn parse_older_than(s: &str) -> Result<u64, String> {
    let zero = s.bytes().all(|b| b == b'0' || b"smhd".contains(&b)) && s.contains('0');
    if zero {
        return Ok(0);
    }
    u64::try_from(drover_plan::parse_duration(s)?.as_millis()).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Args)]
pub(crate) struct StatusArgs {
    /// The run (default: the latest)
    #[arg(value_name = "RUN_ID")]
    pub(crate) run_id: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub(crate) format: StatusFormat,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusFormat {
    /// A table for people
    Text,
    /// Machine-readable
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Plan files to check
    #[arg(required = true, value_name = "PLAN")]
    pub(crate) plans: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    pub(crate) format: ValidateFormat,
    /// Fail (exit 1) on warnings too
    #[arg(long)]
    pub(crate) deny_warnings: bool,
    /// Also estimate each plan's failover time and fail when it exceeds the RTO objective
    /// (needs --sizes)
    #[arg(long, requires = "sizes")]
    pub(crate) estimate: bool,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ModelArgs {
    /// Table sizes for estimates: a YAML or JSON map of table name to size (bytes, or with a
    /// unit: 500MB, 12GiB)
    #[arg(long, value_name = "FILE")]
    pub(crate) sizes: Option<PathBuf>,
    /// Calibrate the duration model from the journals of past runs: under this directory, or
    /// in this state store (`s3://bucket/prefix`)
    #[arg(long, value_name = "DIR|URL")]
    pub(crate) history: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ValidateFormat {
    /// Diagnostics with source snippets
    Text,
    /// `{"plans":[{"path","valid","diagnostics":[...]}]}`
    Json,
    /// GitHub Actions workflow annotations
    Github,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Plan file
    #[arg(value_name = "PLAN")]
    pub(crate) plan: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub(crate) format: PlanFormat,
    /// Which run to outline
    #[arg(long, value_enum, default_value_t = ModeArg::Drill)]
    pub(crate) mode: ModeArg,
    /// Estimate the run's duration per target (the executor, simulated with table sizes)
    #[arg(long)]
    pub(crate) estimate: bool,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Where table sizes come from without --sizes (the source's DescribeTable)
    #[command(flatten)]
    pub(crate) cloud: CloudArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlanFormat {
    /// Waves and chains for people
    Text,
    /// Machine-readable outline
    Json,
    /// Graphviz DOT
    Dot,
    /// Mermaid flowchart
    Mermaid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Restore under drill names, validate, tear down
    Drill,
    /// Restore for real from copies in the target vaults
    Failover,
    /// Back up and copy to the target vaults, no restore
    Backup,
    /// Restore every table to one instant from point-in-time recovery (`drover recover`)
    #[value(alias = "recover")]
    Pitr,
}

impl From<ModeArg> for drover_plan::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Drill => drover_plan::Mode::Drill,
            ModeArg::Failover => drover_plan::Mode::Failover,
            ModeArg::Backup => drover_plan::Mode::Backup,
            ModeArg::Pitr => drover_plan::Mode::Recover,
        }
    }
}
