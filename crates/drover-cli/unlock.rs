//! `drover unlock RUN_ID --lease ID`: breaks a run's lease on an S3 state store on purpose,
//! like `terraform force-unlock`, when its holder is gone for good and waiting for the lease
//! to expire is not an option.
//!
//! Only the lease named is broken (never one taken since it was looked at), and the break is
//! journaled before the lease is deleted: if the holder is in fact alive, its next record
//! collides with the break's and it stops before doing anything more.

use drover_engine::journal::Record;
use drover_engine::state::RunEvent;
use drover_engine::store::Store;
use drover_engine::store::lease::{self, Holder};

use crate::args::UnlockArgs;
use crate::exit::{CliError, Exit};
use crate::output;
use crate::state_store;
use crate::support::runtime;

pub(crate) fn run(args: &UnlockArgs) -> Result<Exit, CliError> {
    if let Err(e) = drover_engine::run::check_run_id(&args.run_id) {
        output::error(&e);
        return Ok(Exit::Usage);
    }
    let rt = runtime()?;
    rt.block_on(unlock(args))
}

async fn unlock(args: &UnlockArgs) -> Result<Exit, CliError> {
    let run_id = &args.run_id;
    let aws = args.aws.over(drover_aws::AwsOptions::default());
    let store = match state_store::open(&args.state, &aws, lease::DEFAULT_TTL).await {
        Ok(store) => store,
        Err(e) => {
            output::error(&e);
            return Ok(Exit::Failure);
        }
    };
    let Store::Bucket(bucket) = &store else {
        output::error(&format!(
            "{} is a local state directory: its lock is the operating system's, released when \
             the process that holds it ends; there is no lease to break",
            store.location()
        ));
        return Ok(Exit::Usage);
    };
    let (body, etag) = match lease::read(&bucket.objects, run_id).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            output::stderr(&format!("run {run_id} holds no lease; nothing to unlock"));
            return Ok(Exit::Success);
        }
        Err(e) => {
            output::error(&e.to_string());
            return Ok(Exit::Failure);
        }
    };
    if body.lease != args.lease {
        output::error(&format!(
            "run {run_id}'s lease is {} (held by {}, until {}), not {}; nothing was done: check \
             who holds it now before breaking it",
            body.lease,
            body.holder,
            drover_engine::run::format_time(body.expires_at),
            args.lease
        ));
        return Ok(Exit::Failure);
    }
    // Journaled first: a holder that is alive collides with this record at its next one. A
    // run whose journal was never created (its holder died starting it) has nothing to
    // journal: its lease alone is broken.
    let exists = match store.exists(run_id).await {
        Ok(exists) => exists,
        Err(e) => {
            output::error(&e.to_string());
            return Ok(Exit::Failure);
        }
    };
    if exists && let Err(exit) = journal_break(&store, run_id, &body).await {
        return Ok(exit);
    }
    match lease::break_lease(&bucket.objects, &body, &etag).await {
        Ok(()) => {
            output::stderr(&format!(
                "broke lease {} of run {run_id} (held by {}); `drover resume {run_id}` continues \
                 the run",
                body.lease, body.holder
            ));
            Ok(Exit::Success)
        }
        Err(lease::LeaseError::Lost { .. }) => {
            output::error(&format!(
                "lease {} of run {run_id} changed while it was being broken (its holder renewed \
                 it, so it is alive); the break is journaled, so that holder stops at its next \
                 record; look again with `drover status {run_id}`",
                body.lease
            ));
            Ok(Exit::Failure)
        }
        Err(e) => {
            output::error(&format!("the lease could not be deleted: {e}"));
            Ok(Exit::Failure)
        }
    }
}

/// Journals the break of `body`'s lease (a `lease-broken` record), durably.
async fn journal_break(store: &Store, run_id: &str, body: &lease::LeaseBody) -> Result<(), Exit> {
    let mut opened = store.open(run_id).await.map_err(|e| {
        output::error(&e.to_string());
        Exit::Failure
    })?;
    let me = Holder::this_process(env!("CARGO_PKG_VERSION"));
    let record = Record::Run {
        event: RunEvent::LeaseBroken {
            lease: body.lease.clone(),
            holder: body.holder.to_string(),
            by: me.to_string(),
        },
    };
    let now = drover_engine::state::stamp(
        drover_engine::Clock::now(&drover_engine::SystemClock::new()),
        &opened.state,
    );
    let journaled = match opened.journal.append(now, record) {
        Ok(_) => opened.journal.flush().await,
        Err(e) => Err(e),
    };
    journaled.map_err(|e| {
        output::error(&format!(
            "the break could not be journaled ({e}); the lease was left as it is: its holder may \
             be writing the run right now"
        ));
        Exit::Failure
    })
}
