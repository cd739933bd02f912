//! The state store a command works on (`--state`, `DROVER_STATE`): a local directory, or an
//! S3 bucket reached with the command's AWS settings; and how a run holds it (the
//! directory's OS lock, or the run's lease on the bucket).

use std::sync::Arc;
use std::time::Duration;

use drover_engine::journal::StateLock;
use drover_engine::store::lease::{self, Holder, Keeper, Taking};
use drover_engine::store::{Bucket, Location, Store};
use drover_engine::{Clock, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::args::StateArgs;
use crate::output;

/// Opens the store `args` name. A bucket's journal writes ride out a store that cannot be
/// reached for `ride_out` (a run's lease time to live: past it, the run stops).
///
/// # Errors
/// A sentence: a bad `--state`, or a bucket that cannot be reached.
pub(crate) async fn open(
    args: &StateArgs,
    aws: &drover_aws::AwsOptions,
    ride_out: Duration,
) -> Result<Store, String> {
    match args.location()? {
        Location::Dir(dir) => {
            if args.state_kms_key.is_some() {
                return Err(
                    "--state-kms-key encrypts the objects of an S3 state store; a local state \
                     directory has none (drop the flag, or use --state s3://...)"
                        .to_owned(),
                );
            }
            Ok(Store::Dir(dir))
        }
        Location::S3 { bucket, prefix, region } => {
            // Tests force small pages to exercise pagination through the real binary.
            let page_size =
                std::env::var("DROVER_STATE_PAGE_SIZE").ok().and_then(|n| n.parse().ok());
            let config = drover_aws::S3StoreConfig {
                bucket: bucket.clone(),
                prefix,
                region,
                kms_key: args.state_kms_key.clone(),
                page_size,
            };
            let asked = config.region.is_none();
            let s3 = drover_aws::S3Store::connect(aws, config).await.map_err(|e| {
                let hint = if asked {
                    " (the bucket's region was looked up in us-east-1: name it in the URL, \
                     `?region=REGION`, so that reaching the state needs no other region)"
                } else {
                    ""
                };
                format!("the state bucket `{bucket}` cannot be used{hint}: {e}")
            })?;
            Ok(Store::Bucket(Bucket { objects: Arc::new(s3), ride_out }))
        }
    }
}

/// Opens the store of a command that only reads runs (`status`, `runs`, `report`): AWS
/// settings from the environment (profile, `AWS_ENDPOINT_URL`, the credential chain).
pub(crate) async fn open_for_reading(args: &StateArgs) -> Result<Store, String> {
    open(args, &drover_aws::AwsOptions::default(), lease::DEFAULT_TTL).await
}

/// How a run holds its store.
pub(crate) enum Hold {
    /// A directory's OS lock (released when the process ends, however it ends).
    Dir(StateLock),
    /// A run's lease on a bucket, not yet kept alive.
    Lease(Box<lease::Lease>),
}

/// A hold while its run executes: the lease is renewed in the background.
pub(crate) enum Held {
    /// Held for its drop: the OS lock is released with it.
    Dir(#[allow(dead_code)] StateLock),
    Lease(Keeper),
}

/// Takes `run_id` on `store`: the directory's lock, or the run's lease (waiting up to
/// `taking.wait` for a live one, taking over an expired one).
///
/// # Errors
/// A sentence saying who holds it, or why it cannot be taken.
pub(crate) async fn hold(store: &Store, run_id: &str, taking: Taking) -> Result<Hold, String> {
    match store {
        Store::Dir(dir) => StateLock::acquire(dir, run_id).map(Hold::Dir),
        Store::Bucket(bucket) => {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
            let holder = Holder::this_process(env!("CARGO_PKG_VERSION"));
            let note = |line: String| output::stderr(&format!("note: {line}"));
            let acquired = lease::acquire(&bucket.objects, run_id, holder, &clock, taking, &note)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(old) = &acquired.took_over {
                output::stderr(&format!(
                    "took over run {run_id} from {} (its lease {} expired at {})",
                    old.holder,
                    old.lease,
                    drover_engine::run::format_time(old.expires_at)
                ));
            }
            Ok(Hold::Lease(Box::new(acquired.lease)))
        }
    }
}

impl Hold {
    /// Keeps the hold for a run: a lease is renewed until released; losing it cancels `run`.
    pub(crate) fn keep(self, run: &CancellationToken) -> Held {
        match self {
            Hold::Dir(lock) => Held::Dir(lock),
            Hold::Lease(l) => {
                Held::Lease(lease::keep(*l, Arc::new(SystemClock::new()), run.clone()))
            }
        }
    }

    /// Gives the hold up without running (a run that stopped before executing).
    pub(crate) async fn release(self) {
        if let Hold::Lease(l) = self
            && let Err(e) = l.release().await
        {
            output::stderr(&format!("warning: releasing the run's lease: {e}"));
        }
    }
}

impl Held {
    /// Why the run lost its lease, if it did.
    pub(crate) fn lost(&self) -> Option<String> {
        match self {
            Held::Dir(_) => None,
            Held::Lease(keeper) => keeper.lost(),
        }
    }

    /// Releases the hold (a lease is deleted if it is still this process's), so that the
    /// next `resume` anywhere proceeds at once.
    pub(crate) async fn release(self) {
        if let Held::Lease(keeper) = self
            && let Err(e) = keeper.release().await
        {
            output::stderr(&format!(
                "warning: the run's lease could not be released ({e}); it expires by itself"
            ));
        }
    }
}

/// Who holds a run now, for a process that lost it: a sentence, or nothing if unknown.
pub(crate) async fn holder_now(store: &Store, run_id: &str) -> Option<String> {
    let Store::Bucket(bucket) = store else { return None };
    let now = SystemClock::new().now();
    match lease::read(&bucket.objects, run_id).await {
        Ok(Some((body, _))) if body.expires_at > now => Some(format!(
            "run {run_id} is held by {} (lease {}, until {} unless renewed)",
            body.holder,
            body.lease,
            drover_engine::run::format_time(body.expires_at)
        )),
        Ok(Some((body, _))) => Some(format!(
            "run {run_id}'s lease {} (held by {}) expired at {}: its holder is gone or cut off; \
             `drover resume {run_id}` takes it over",
            body.lease,
            body.holder,
            drover_engine::run::format_time(body.expires_at)
        )),
        _ => None,
    }
}
