//! DynamoDB ([`TableService`]): DescribeTable, table updates (PITR, TTL, streams, deletion
//! protection, tags), deletes, scans (counts and digests, which take the model's scan time)
//! and item reads and writes.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use drover_engine::ErrorKind;
use drover_engine::ports::{
    CloudResult, Item, Millis, TableDigest, TableInfo, TableService, TimeToLive,
};

use crate::cloud::SimCloud;
use crate::err;
use crate::items::{ITEM_BYTES, Items, key_part};
use crate::world::SimTable;

/// How long UpdateTable (stream, deletion protection) keeps a table UPDATING, and a delete
/// keeps it DELETING.
const TABLE_UPDATE_MS: Millis = 5_000;

/// What DescribeTable answers for `t` at `now`.
fn table_info(t: &SimTable, now: Millis) -> TableInfo {
    let status = if t.deleting_until.is_some() {
        "DELETING"
    } else if t.busy_until.is_some_and(|u| u > now) {
        "UPDATING"
    } else {
        "ACTIVE"
    };
    TableInfo {
        name: t.name.clone(),
        arn: t.arn.clone(),
        status: status.to_owned(),
        partition_key: t.schema.partition_key.clone(),
        sort_key: t.schema.sort_key.clone(),
        global_indexes: t
            .schema
            .global_indexes
            .iter()
            .map(|g| (g.clone(), "ACTIVE".to_owned()))
            .collect(),
        local_indexes: t.schema.local_indexes.clone(),
        restore_in_progress: false,
        kms_key_arn: t.kms_key_arn.clone(),
        item_count: t.items.count(&t.schema),
        size_bytes: t.items.count(&t.schema) * ITEM_BYTES,
        stream: t.settings.stream.clone(),
        deletion_protection: t.settings.deletion_protection,
    }
}

#[async_trait]
impl TableService for SimCloud {
    async fn describe_table(&self, region: &str, name: &str) -> CloudResult<Option<TableInfo>> {
        self.op("DescribeTable", region, |w, now| {
            let r = w.region("DescribeTable", region)?;
            Ok(r.tables.get(name).map(|t| table_info(t, now)))
        })
        .await
    }

    async fn point_in_time_recovery(&self, region: &str, name: &str) -> CloudResult<bool> {
        const OP: &str = "DescribeContinuousBackups";
        self.op(OP, region, |w, _| Ok(w.table(OP, region, name)?.settings.point_in_time_recovery))
            .await
    }

    async fn time_to_live(&self, region: &str, name: &str) -> CloudResult<TimeToLive> {
        const OP: &str = "DescribeTimeToLive";
        self.op(OP, region, |w, _| {
            let t = w.table(OP, region, name)?;
            Ok(match &t.settings.ttl_attribute {
                Some(a) => TimeToLive { status: "ENABLED".to_owned(), attribute: Some(a.clone()) },
                None => TimeToLive { status: "DISABLED".to_owned(), attribute: None },
            })
        })
        .await
    }

    async fn list_tags(&self, region: &str, arn: &str) -> CloudResult<BTreeMap<String, String>> {
        const OP: &str = "ListTagsOfResource";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            let t = r.tables.values().find(|t| t.arn == arn).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Requested resource not found: {arn}"))
            })?;
            Ok(t.tags.clone())
        })
        .await
    }

    async fn set_point_in_time_recovery(
        &self,
        region: &str,
        name: &str,
        on: bool,
    ) -> CloudResult<()> {
        self.op("UpdateContinuousBackups", region, |w, _| {
            w.table("UpdateContinuousBackups", region, name)?.settings.point_in_time_recovery = on;
            Ok(())
        })
        .await
    }

    async fn enable_ttl(&self, region: &str, name: &str, attribute: &str) -> CloudResult<()> {
        const OP: &str = "UpdateTimeToLive";
        self.op(OP, region, |w, _| {
            let t = w.active_table(OP, region, name)?;
            if t.settings.ttl_attribute.as_deref() == Some(attribute) {
                return Err(err(ErrorKind::InvalidState, OP, "TimeToLive is already enabled"));
            }
            t.settings.ttl_attribute = Some(attribute.to_owned());
            Ok(())
        })
        .await
    }

    async fn set_stream(&self, region: &str, name: &str, view: Option<&str>) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        self.op(OP, region, |w, now| {
            let t = w.active_table(OP, region, name)?;
            // UpdateTable's StreamSpecification: "You receive a ValidationException if you try
            // to enable a stream on a table that already has a stream, or if you try to disable
            // a stream on a table that doesn't have a stream."
            match (&t.settings.stream, view) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        ErrorKind::Fatal,
                        OP,
                        format!("ValidationException: Table {name} already has an enabled stream"),
                    ));
                }
                (None, None) => {
                    return Err(err(
                        ErrorKind::Fatal,
                        OP,
                        format!("ValidationException: Table {name} has no stream to disable"),
                    ));
                }
                _ => {}
            }
            t.settings.stream = view.map(str::to_owned);
            t.busy_until = Some(now + TABLE_UPDATE_MS);
            w.table_event(now + TABLE_UPDATE_MS);
            Ok(())
        })
        .await
    }

    async fn set_deletion_protection(&self, region: &str, name: &str, on: bool) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        self.op(OP, region, |w, now| {
            let t = w.active_table(OP, region, name)?;
            t.settings.deletion_protection = on;
            t.busy_until = Some(now + TABLE_UPDATE_MS);
            w.table_event(now + TABLE_UPDATE_MS);
            Ok(())
        })
        .await
    }

    async fn tag_table(
        &self,
        region: &str,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<()> {
        const OP: &str = "TagResource";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            let t = r.tables.values_mut().find(|t| t.arn == arn).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Requested resource not found: {arn}"))
            })?;
            t.tags.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            if t.tags.len() > 50 {
                return Err(err(ErrorKind::Fatal, OP, "Too many tags (50 allowed)"));
            }
            Ok(())
        })
        .await
    }

    async fn delete_table(&self, region: &str, name: &str) -> CloudResult<()> {
        const OP: &str = "DeleteTable";
        self.op(OP, region, |w, now| {
            let t = w.active_table(OP, region, name)?;
            if t.settings.deletion_protection {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    format!("Table {name} has deletion protection enabled"),
                ));
            }
            t.deleting_until = Some(now + TABLE_UPDATE_MS);
            w.table_event(now + TABLE_UPDATE_MS);
            Ok(())
        })
        .await
    }

    async fn count_items(&self, region: &str, name: &str, segments: u32) -> CloudResult<u64> {
        let count = self
            .op("Scan", region, |w, _| {
                let t = w.table("Scan", region, name)?;
                Ok(t.items.count(&t.schema))
            })
            .await?;
        self.scan_time(count, segments).await;
        Ok(count)
    }

    async fn digest_items(
        &self,
        region: &str,
        name: &str,
        segments: u32,
    ) -> CloudResult<TableDigest> {
        let digest = self
            .op("Scan", region, |w, _| {
                let t = w.table("Scan", region, name)?;
                Ok(t.items.digest(&t.schema))
            })
            .await?;
        self.scan_time(digest.items, segments).await;
        Ok(digest)
    }

    async fn get_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<Option<Item>> {
        self.op("GetItem", region, |w, _| {
            let t = w.table("GetItem", region, name)?;
            Ok(t.items.get(&t.schema, key))
        })
        .await
    }

    async fn put_item(&self, region: &str, name: &str, item: &Item) -> CloudResult<()> {
        self.op("PutItem", region, |w, _| {
            let t = w.table("PutItem", region, name)?;
            let key = key_part(&t.schema, item);
            if !key.contains_key(&t.schema.partition_key.name) {
                return Err(err(
                    ErrorKind::Fatal,
                    "PutItem",
                    "The item is missing the partition key",
                ));
            }
            t.items.explicit.insert(Items::canonical(&key), item.clone());
            Ok(())
        })
        .await
    }

    async fn delete_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<()> {
        self.op("DeleteItem", region, |w, _| {
            let t = w.table("DeleteItem", region, name)?;
            t.items.explicit.remove(&Items::canonical(key));
            Ok(())
        })
        .await
    }
}

impl SimCloud {
    /// Waits as long as a parallel scan of `items` items in `segments` segments takes.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    async fn scan_time(&self, items: u64, segments: u32) {
        let rate = self.lock().model.scan_mb_s * f64::from(segments.max(1));
        let secs = (items * ITEM_BYTES) as f64 / 1e6 / rate;
        if secs.is_finite() && secs > 0.0 {
            self.clock.sleep(Duration::from_secs_f64(secs)).await;
        }
    }
}
