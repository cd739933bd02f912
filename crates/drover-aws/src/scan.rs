//! Parallel segmented DynamoDB scans: item counts (`Select=COUNT`) and digests (consistent
//! reads of every item, canonically encoded).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use drover_engine::ports::{CloudResult, TableDigest};
use drover_engine::{CloudError, ErrorKind};

use crate::errors;
use crate::items::canonical;

/// The number of items of table `name`, counted by `segments` parallel `Select=COUNT` scans.
pub(crate) async fn count(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    segments: u32,
) -> CloudResult<u64> {
    parallel_scan(
        ddb,
        name,
        segments,
        (Some(Select::Count), None),
        |count: &mut u64, page| *count += u64::try_from(page.count()).unwrap_or(0),
        |a, b| a + b,
    )
    .await
}

/// The digest of every item of table `name`, read by `segments` parallel consistent scans.
pub(crate) async fn digest(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    segments: u32,
) -> CloudResult<TableDigest> {
    parallel_scan(
        ddb,
        name,
        segments,
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

/// Scans a table in `segments` parallel segments (with `Select` and `ConsistentRead` as
/// given): `fold` adds each page to its segment's accumulator, `merge` combines the segments'.
async fn parallel_scan<T: Default + Send + 'static>(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    segments: u32,
    (select, consistent_read): (Option<Select>, Option<bool>),
    fold: fn(&mut T, &aws_sdk_dynamodb::operation::scan::ScanOutput),
    merge: fn(T, T) -> T,
) -> CloudResult<T> {
    const OP: &str = "Scan";
    let total = i32::try_from(segments.clamp(1, 1_000_000)).unwrap_or(1);
    let mut tasks = tokio::task::JoinSet::new();
    for segment in 0..total {
        let ddb = ddb.clone();
        let (name, select) = (name.to_owned(), select.clone());
        tasks.spawn(async move {
            let mut acc = T::default();
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let page = ddb
                    .scan()
                    .table_name(&name)
                    .set_select(select.clone())
                    .set_consistent_read(consistent_read)
                    .segment(segment)
                    .total_segments(total)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| errors::map(OP, &e))?;
                fold(&mut acc, &page);
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
