//! DynamoDB ([`TableService`]): ListTables, DescribeTable, table updates (PITR, TTL, streams,
//! deletion protection, tags), deletes, scans (counts and digests, which take the model's scan
//! time) and item reads and writes.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use drover_engine::ErrorKind;
use drover_engine::ports::{
    CloudResult, ContinuousBackups, Item, Millis, PointInTimeRestore, ScanOptions, TableDigest,
    TableInfo, TableService, TimeToLive,
};

use crate::cloud::SimCloud;
use crate::err;
use crate::items::{ITEM_BYTES, Items, key_part};
use crate::pitr::PitrState;
use crate::realism::Status;
use crate::world::{SimTable, TableEvent, World};

/// What DescribeTable answers for `t` at `now`.
fn table_info(t: &SimTable, now: Millis) -> TableInfo {
    let restoring = t.realism.restoring(now);
    let index_status = if restoring { "CREATING" } else { "ACTIVE" };
    TableInfo {
        name: t.name.clone(),
        arn: t.arn.clone(),
        status: t.status(now).as_str().to_owned(),
        partition_key: t.schema.partition_key.clone(),
        sort_key: t.schema.sort_key.clone(),
        global_indexes: t
            .schema
            .global_indexes
            .iter()
            .map(|g| (g.clone(), index_status.to_owned()))
            .collect(),
        local_indexes: t.schema.local_indexes.clone(),
        restore_in_progress: restoring,
        kms_key_arn: t.kms_key_arn.clone(),
        item_count: t.items.count(&t.schema),
        size_bytes: t.items.count(&t.schema) * ITEM_BYTES,
        read_capacity_units: None,
        stream: t.settings.stream.clone(),
        deletion_protection: t.settings.deletion_protection,
        created_at: t.created_at,
        restored_from: t.restored_from.clone(),
    }
}

/// The table `arn` names in `region`, for a tag operation: DynamoDB's not-found error when
/// there is none, or when it is CREATING or DELETING ([`crate::Realism::inactive_tables_not_found`]).
fn tagged_table<'a>(
    w: &'a mut World,
    op: &str,
    region: &str,
    arn: &str,
    now: Millis,
) -> CloudResult<&'a mut SimTable> {
    let hide = w.realism.inactive_tables_not_found;
    let not_found = || {
        err(
            ErrorKind::NotFound,
            op,
            format!("Requested resource not found: ResourcArn: {arn} not found"),
        )
    };
    let r = w.region(op, region)?;
    // The table the ARN's name names, when its ARN is this one (a lookup, not a scan); any
    // table with this ARN otherwise.
    let by_name = arn.rsplit('/').next().filter(|n| r.tables.get(*n).is_some_and(|t| t.arn == arn));
    let name = match by_name {
        Some(name) => name.to_owned(),
        None => r.tables.values().find(|t| t.arn == arn).ok_or_else(not_found)?.name.clone(),
    };
    let status = r.tables.get(&name).ok_or_else(not_found)?.status(now);
    if hide && matches!(status, Status::Creating | Status::Deleting) {
        w.saw("inactive_tables_not_found");
        return Err(not_found());
    }
    w.region(op, region)?.tables.get_mut(&name).ok_or_else(not_found)
}

/// The table `name` in `region`, for an item operation: DynamoDB's not-found error when there
/// is none, or when it is CREATING ([`crate::Realism::inactive_tables_not_found`]).
fn data_table<'a>(
    w: &'a mut World,
    op: &str,
    region: &str,
    name: &str,
    now: Millis,
) -> CloudResult<&'a mut SimTable> {
    let hide = w.realism.inactive_tables_not_found;
    if hide && w.table(op, region, name)?.status(now) == Status::Creating {
        w.saw("inactive_tables_not_found");
        return Err(err(
            ErrorKind::NotFound,
            op,
            format!("Requested resource not found: Table: {name} not found"),
        ));
    }
    w.table(op, region, name)
}

/// Starts an UpdateTable's UPDATING state ([`crate::Realism::update_ms`]).
fn updating(w: &mut World, region: &str, name: &str, now: Millis) {
    let until = now.saturating_add(Millis::try_from(w.realism.update_ms).unwrap_or(Millis::MAX));
    if until > now
        && let Some(t) = w.regions.get_mut(region).and_then(|r| r.tables.get_mut(name))
    {
        t.busy_until = Some(until);
        w.table_event(until, TableEvent::Table(region.to_owned(), name.to_owned()));
    }
}

#[async_trait]
impl TableService for SimCloud {
    async fn continuous_backups(&self, region: &str, name: &str) -> CloudResult<ContinuousBackups> {
        const OP: &str = "DescribeContinuousBackups";
        self.op(OP, region, |w, now| w.continuous_backups(OP, region, name, now)).await
    }

    async fn restore_to_point_in_time(&self, req: &PointInTimeRestore) -> CloudResult<String> {
        const OP: &str = "RestoreTableToPointInTime";
        self.op(OP, &req.region, |w, now| w.restore_to_point_in_time(OP, req, now)).await
    }

    async fn list_tables(&self, region: &str) -> CloudResult<Vec<String>> {
        const OP: &str = "ListTables";
        self.op(OP, region, |w, _| Ok(w.region(OP, region)?.tables.keys().cloned().collect())).await
    }

    async fn describe_table(&self, region: &str, name: &str) -> CloudResult<Option<TableInfo>> {
        self.op("DescribeTable", region, |w, now| {
            let r = w.region("DescribeTable", region)?;
            let info = r.tables.get(name).map(|t| table_info(t, now));
            if let Some(info) = &info {
                match info.status.as_str() {
                    "DELETING" => w.saw("delete_ms"),
                    "UPDATING" => w.saw("update_ms"),
                    _ if !info.is_ready() => w.saw("restore_settle_ms"),
                    _ => {}
                }
            }
            Ok(info)
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
        self.op(OP, region, |w, now| {
            let t = w.table(OP, region, name)?;
            let ttl = match &t.settings.ttl_attribute {
                Some(a) => TimeToLive {
                    status: t.realism.ttl_status(now).to_owned(),
                    attribute: Some(a.clone()),
                },
                None => TimeToLive { status: "DISABLED".to_owned(), attribute: None },
            };
            if ttl.status == "ENABLING" {
                w.saw("ttl_enabling_ms");
            }
            Ok(ttl)
        })
        .await
    }

    async fn list_tags(&self, region: &str, arn: &str) -> CloudResult<BTreeMap<String, String>> {
        const OP: &str = "ListTagsOfResource";
        self.op(OP, region, |w, now| {
            let t = tagged_table(w, OP, region, arn, now)?;
            let shown = t.realism.tags_shown(&t.tags, now);
            if shown != t.tags {
                w.saw("tag_delay_ms");
            }
            Ok(shown)
        })
        .await
    }

    async fn set_point_in_time_recovery(
        &self,
        region: &str,
        name: &str,
        on: bool,
    ) -> CloudResult<()> {
        const OP: &str = "UpdateContinuousBackups";
        self.op(OP, region, |w, now| {
            let realism = w.realism.clone();
            let t = w.table(OP, region, name)?;
            if let Err(e) = t.realism.pitr_unavailable(&realism, OP, now) {
                w.saw("pitr_unavailable_ms");
                return Err(e);
            }
            t.settings.point_in_time_recovery = on;
            // Enabling starts a history (an enabled table keeps its own); disabling drops it.
            if !on {
                t.pitr = None;
            } else if t.pitr.is_none() {
                t.pitr = Some(PitrState::enabled(now));
            }
            Ok(())
        })
        .await
    }

    async fn enable_ttl(&self, region: &str, name: &str, attribute: &str) -> CloudResult<()> {
        const OP: &str = "UpdateTimeToLive";
        self.op(OP, region, |w, now| {
            let realism = w.realism.clone();
            let t = w.active_table(OP, region, name, now)?;
            if t.settings.ttl_attribute.as_deref() == Some(attribute) {
                return Err(err(ErrorKind::InvalidState, OP, "TimeToLive is already enabled"));
            }
            if let Err(e) = t.realism.ttl_change(OP, now) {
                w.saw("ttl_change_window_ms");
                return Err(e);
            }
            t.settings.ttl_attribute = Some(attribute.to_owned());
            t.realism.ttl_changed(&realism, now);
            Ok(())
        })
        .await
    }

    async fn set_stream(&self, region: &str, name: &str, view: Option<&str>) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        self.op(OP, region, |w, now| {
            let t = w.active_table(OP, region, name, now)?;
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
            updating(w, region, name, now);
            Ok(())
        })
        .await
    }

    async fn set_deletion_protection(&self, region: &str, name: &str, on: bool) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        self.op(OP, region, |w, now| {
            let t = w.active_table(OP, region, name, now)?;
            t.settings.deletion_protection = on;
            updating(w, region, name, now);
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
        self.op(OP, region, |w, now| {
            let realism = w.realism.clone();
            let t = tagged_table(w, OP, region, arn, now)?;
            let mut after = t.tags.clone();
            after.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            if after.len() > 50 {
                return Err(err(ErrorKind::Fatal, OP, "Too many tags (50 allowed)"));
            }
            t.realism.tags_changed(&realism, &t.tags, &after, now);
            t.tags = after;
            Ok(())
        })
        .await
    }

    async fn delete_table(&self, region: &str, name: &str) -> CloudResult<()> {
        const OP: &str = "DeleteTable";
        self.op(OP, region, |w, now| {
            let lingers = Millis::try_from(w.realism.delete_ms).unwrap_or(Millis::MAX);
            let t = w.active_table(OP, region, name, now)?;
            if t.settings.deletion_protection {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    format!("Table {name} has deletion protection enabled"),
                ));
            }
            if lingers == 0 {
                w.drop_table(region, name);
            } else {
                let until = now.saturating_add(lingers);
                t.deleting_until = Some(until);
                w.table_event(until, TableEvent::Table(region.to_owned(), name.to_owned()));
            }
            Ok(())
        })
        .await
    }

    async fn count_items(&self, region: &str, name: &str, opts: &ScanOptions) -> CloudResult<u64> {
        let count = self
            .op("Scan", region, |w, now| {
                let t = data_table(w, "Scan", region, name, now)?;
                Ok(t.items.count(&t.schema))
            })
            .await?;
        self.scan_time(count, opts, false).await;
        Ok(count)
    }

    async fn digest_items(
        &self,
        region: &str,
        name: &str,
        opts: &ScanOptions,
    ) -> CloudResult<TableDigest> {
        let digest = self
            .op("Scan", region, |w, now| {
                let t = data_table(w, "Scan", region, name, now)?;
                Ok(t.items.digest(&t.schema))
            })
            .await?;
        self.scan_time(digest.items, opts, true).await;
        Ok(digest)
    }

    async fn get_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<Option<Item>> {
        self.op("GetItem", region, |w, now| {
            let t = data_table(w, "GetItem", region, name, now)?;
            Ok(t.items.get(&t.schema, key))
        })
        .await
    }

    async fn put_item(&self, region: &str, name: &str, item: &Item) -> CloudResult<()> {
        self.op("PutItem", region, |w, now| {
            let realism = w.realism.clone();
            let t = data_table(w, "PutItem", region, name, now)?;
            let key = key_part(&t.schema, item);
            if !key.contains_key(&t.schema.partition_key.name) {
                return Err(err(
                    ErrorKind::Fatal,
                    "PutItem",
                    "The item is missing the partition key",
                ));
            }
            let key = Items::canonical(&key);
            let before = t.items.explicit.insert(key.clone(), item.clone());
            if let Some(p) = &mut t.pitr {
                p.wrote(key.clone(), before.clone(), now);
            }
            if let Some(at) = t.realism.wrote(&realism, key, before, now) {
                w.table_event(at, TableEvent::Table(region.to_owned(), name.to_owned()));
            }
            Ok(())
        })
        .await
    }

    async fn delete_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<()> {
        self.op("DeleteItem", region, |w, now| {
            let realism = w.realism.clone();
            let t = data_table(w, "DeleteItem", region, name, now)?;
            let key = Items::canonical(key);
            let before = t.items.explicit.remove(&key);
            if let Some(p) = &mut t.pitr {
                p.wrote(key.clone(), before.clone(), now);
            }
            if let Some(at) = t.realism.wrote(&realism, key, before, now) {
                w.table_event(at, TableEvent::Table(region.to_owned(), name.to_owned()));
            }
            Ok(())
        })
        .await
    }
}

impl SimCloud {
    /// Waits as long as a parallel scan of `items` items in `segments` segments takes.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    async fn scan_time(&self, items: u64, opts: &ScanOptions, consistent: bool) {
        let rate = self.lock().world.model.scan_mb_s * f64::from(opts.segments.max(1));
        let bytes = (items * ITEM_BYTES) as f64;
        let mut secs = bytes / 1e6 / rate;
        // A read budget: a read capacity unit reads 4 KB consistently, 8 KB eventually.
        if let Some(units) = opts.read_units_per_second.filter(|u| *u > 0.0) {
            let per_unit = if consistent { 4096.0 } else { 8192.0 };
            secs = secs.max(bytes / per_unit / units);
        }
        if secs.is_finite() && secs > 0.0 {
            self.clock.sleep(Duration::from_secs_f64(secs)).await;
        }
    }
}
