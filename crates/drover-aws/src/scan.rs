//! Parallel segmented DynamoDB scans: item counts (`Select=COUNT`) and digests (consistent
//! reads of every item, canonically encoded).
//!
//! A scan may have a read budget (`ScanOptions::read_units_per_second`): pages ask for the
//! capacity they consumed (`ReturnConsumedCapacity=TOTAL`), are sized with `Limit` to about a
//! second of the budget per segment, and every segment waits before its next page until the
//! whole scan's consumption is back within the budget. A throttled or failed page is asked
//! again from its own `ExclusiveStartKey` after a backoff: the segment goes on where it was,
//! instead of the whole scan starting over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, Select};
use drover_engine::ports::{CloudResult, ScanOptions, TableDigest};
use drover_engine::{CloudError, ErrorKind};

use crate::errors;
use crate::items::canonical;

/// Bytes one read capacity unit reads with a strongly consistent read (eventually consistent
/// reads read twice as much).
const UNIT_BYTES: f64 = 4096.0;

/// Attempts of one page that fails with a passing error before the scan fails.
const PAGE_ATTEMPTS: u32 = 8;

/// The number of items of table `name`, counted by parallel `Select=COUNT` scans.
pub(crate) async fn count(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    opts: &ScanOptions,
) -> CloudResult<u64> {
    parallel_scan(
        ddb,
        name,
        opts,
        (Some(Select::Count), None),
        |count: &mut u64, page| *count += u64::try_from(page.count()).unwrap_or(0),
        |a, b| a + b,
    )
    .await
}

/// The digest of every item of table `name`, read by parallel consistent scans.
pub(crate) async fn digest(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    opts: &ScanOptions,
) -> CloudResult<TableDigest> {
    parallel_scan(
        ddb,
        name,
        opts,
        (None, Some(true)),
        |digest: &mut TableDigest, page| {
            for item in page.items() {
                digest.add(&canonical(item));
            }
        },
        TableDigest::merge,
    )
    .await
}

/// The read budget of one scan, shared by its segments.
#[derive(Debug)]
struct Pacer {
    /// Units per second.
    rate: f64,
    started: Instant,
    consumed: f64,
}

impl Pacer {
    /// Records a page's consumption; how long to wait before the next page so that the scan
    /// stays within its budget.
    fn consumed(&mut self, units: f64) -> Duration {
        self.consumed += units;
        let due = Duration::from_secs_f64((self.consumed / self.rate).max(0.0));
        due.saturating_sub(self.started.elapsed())
    }
}

/// Items per page: about a second of the budget per segment, when the budget and the item
/// size are known (at least 1, at most DynamoDB's 1 MB page holds anyway).
fn page_limit(opts: &ScanOptions, consistent: bool) -> Option<i32> {
    let rate = opts.read_units_per_second?;
    let item = opts.item_bytes.unwrap_or(1024).max(1) as f64;
    let per_unit = if consistent { UNIT_BYTES } else { 2.0 * UNIT_BYTES };
    let per_segment = rate / f64::from(opts.segments.max(1));
    let items = (per_segment * per_unit / item).floor();
    #[allow(clippy::cast_possible_truncation)]
    Some(items.clamp(1.0, 100_000.0) as i32)
}

/// Scans a table in parallel segments (with `Select` and `ConsistentRead` as given): `fold`
/// adds each page to its segment's accumulator, `merge` combines the segments'.
async fn parallel_scan<T: Default + Send + 'static>(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    opts: &ScanOptions,
    (select, consistent_read): (Option<Select>, Option<bool>),
    fold: fn(&mut T, &aws_sdk_dynamodb::operation::scan::ScanOutput),
    merge: fn(T, T) -> T,
) -> CloudResult<T> {
    const OP: &str = "Scan";
    let total = i32::try_from(opts.segments.clamp(1, 1_000_000)).unwrap_or(1);
    let limit = page_limit(opts, consistent_read.unwrap_or(false));
    let pacer = opts
        .read_units_per_second
        .filter(|r| *r > 0.0)
        .map(|rate| Arc::new(Mutex::new(Pacer { rate, started: Instant::now(), consumed: 0.0 })));
    let mut tasks = tokio::task::JoinSet::new();
    for segment in 0..total {
        let ddb = ddb.clone();
        let (name, select, pacer) = (name.to_owned(), select.clone(), pacer.clone());
        tasks.spawn(async move {
            let mut acc = T::default();
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let mut attempt = 0;
                let page = loop {
                    let sent = ddb
                        .scan()
                        .table_name(&name)
                        .set_select(select.clone())
                        .set_consistent_read(consistent_read)
                        .set_limit(limit)
                        .set_return_consumed_capacity(
                            pacer.is_some().then_some(ReturnConsumedCapacity::Total),
                        )
                        .segment(segment)
                        .total_segments(total)
                        .set_exclusive_start_key(start.clone())
                        .send()
                        .await
                        .map_err(|e| errors::map(OP, &e));
                    match sent {
                        Ok(page) => break page,
                        // A throttled or failed page is asked again from where it started.
                        Err(e) if e.kind.is_retryable() && attempt + 1 < PAGE_ATTEMPTS => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(100 << attempt.min(7))).await;
                        }
                        Err(e) => return Err(e),
                    }
                };
                fold(&mut acc, &page);
                if let Some(pacer) = &pacer {
                    let units =
                        page.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0);
                    let wait = pacer.lock().map(|mut p| p.consumed(units)).unwrap_or_default();
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                }
                match page.last_evaluated_key() {
                    Some(k) if !k.is_empty() => start = Some(k.clone()),
                    _ => return Ok::<T, CloudError>(acc),
                }
            }
        });
    }
    let mut out = T::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(segment)) => out = merge(out, segment),
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                let message = format!("scan segment task failed: {e}");
                return Err(CloudError::new(ErrorKind::Transient, OP, message));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_about_a_second_of_the_budget_per_segment() {
        let opts =
            |rate, item| ScanOptions { segments: 4, read_units_per_second: rate, item_bytes: item };
        // 100 units/s over 4 segments, 400-byte items, consistent: 25 units = 102,400 bytes.
        assert_eq!(page_limit(&opts(Some(100.0), Some(400)), true), Some(256));
        assert_eq!(page_limit(&opts(Some(100.0), Some(400)), false), Some(512));
        assert_eq!(page_limit(&opts(Some(1.0), Some(400_000)), true), Some(1), "at least one");
        assert_eq!(page_limit(&opts(None, Some(400)), true), None, "unpaced: DynamoDB's pages");
    }

    #[test]
    fn the_pacer_keeps_the_scan_within_its_budget() {
        let mut p = Pacer { rate: 10.0, started: Instant::now(), consumed: 0.0 };
        // 20 units at 10 per second: the next page waits until about 2 s after the start.
        let wait = p.consumed(20.0);
        assert!(wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2), "{wait:?}");
        let mut p =
            Pacer { rate: 10.0, started: Instant::now() - Duration::from_secs(5), consumed: 0.0 };
        assert_eq!(p.consumed(20.0), Duration::ZERO, "behind the budget: no wait");
    }
}
