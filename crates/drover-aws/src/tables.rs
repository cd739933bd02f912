//! DynamoDB tables: the names in a region (ListTables, paged), describe (DescribeTable alone,
//! so that polling a table costs one call), the settings a restore drops (point-in-time
//! recovery, `pitr.rs`; DescribeTimeToLive) and tags (ListTagsOfResource, paged) read on their
//! own, point-in-time restores (`pitr.rs`), settings updates (PITR, TTL, streams, deletion
//! protection), tags, delete, item counts and digests (by parallel scan), and single items.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    KeyType as DdbKeyType, PointInTimeRecoverySpecification, ScalarAttributeType,
    StreamSpecification, StreamViewType, Tag, TimeToLiveSpecification,
};
use drover_engine::ports::{
    CloudResult, ContinuousBackups, Item, KeyAttribute, KeyType, PointInTimeRestore, ScanOptions,
    TableDigest, TableInfo, TableService, TimeToLive,
};
use drover_engine::{CloudError, ErrorKind};

use crate::AwsCloud;
use crate::errors::{self, missing};
use crate::items::{from_item, key_map};
use crate::{pitr, scan};

#[async_trait]
impl TableService for AwsCloud {
    async fn continuous_backups(&self, region: &str, name: &str) -> CloudResult<ContinuousBackups> {
        self.describe_continuous_backups(region, name).await
    }

    async fn restore_to_point_in_time(&self, req: &PointInTimeRestore) -> CloudResult<String> {
        self.restore_table_to_point_in_time(req).await
    }

    async fn describe_table(&self, region: &str, name: &str) -> CloudResult<Option<TableInfo>> {
        let ddb = self.clients(region).await.dynamodb;
        let out = match ddb.describe_table().table_name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = errors::map("DescribeTable", &e);
                return if e.kind == ErrorKind::NotFound { Ok(None) } else { Err(e) };
            }
        };
        let t = out.table().ok_or_else(|| missing("DescribeTable", "Table"))?;
        let arn = t.table_arn().unwrap_or_default().to_owned();
        let status = t.table_status().map_or("UNKNOWN", |s| s.as_str()).to_owned();
        let kind_of = |attr: &str| {
            t.attribute_definitions().iter().find(|d| d.attribute_name() == attr).map_or(
                KeyType::S,
                |d| match d.attribute_type() {
                    ScalarAttributeType::N => KeyType::N,
                    ScalarAttributeType::B => KeyType::B,
                    _ => KeyType::S,
                },
            )
        };
        let key = |kt: DdbKeyType| {
            t.key_schema().iter().find(|k| *k.key_type() == kt).map(|k| KeyAttribute {
                name: k.attribute_name().to_owned(),
                kind: kind_of(k.attribute_name()),
            })
        };
        let partition_key =
            key(DdbKeyType::Hash).ok_or_else(|| missing("DescribeTable", "partition key"))?;
        let sort_key = key(DdbKeyType::Range);
        let stream = t
            .stream_specification()
            .filter(|s| s.stream_enabled())
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned());
        Ok(Some(TableInfo {
            name: name.to_owned(),
            arn,
            status,
            partition_key,
            sort_key,
            global_indexes: t
                .global_secondary_indexes()
                .iter()
                .map(|g| {
                    (
                        g.index_name().unwrap_or_default().to_owned(),
                        g.index_status().map_or("ACTIVE", |s| s.as_str()).to_owned(),
                    )
                })
                .collect(),
            local_indexes: t
                .local_secondary_indexes()
                .iter()
                .filter_map(|l| l.index_name().map(str::to_owned))
                .collect(),
            restore_in_progress: t.restore_summary().is_some_and(|r| r.restore_in_progress()),
            kms_key_arn: t
                .sse_description()
                .and_then(|s| s.kms_master_key_arn())
                .map(str::to_owned),
            item_count: t.item_count().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            size_bytes: t.table_size_bytes().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            // On demand unless the billing mode says PROVISIONED (or, for tables created before
            // billing modes, provisioned throughput is set).
            read_capacity_units: match t.billing_mode_summary().and_then(|b| b.billing_mode()) {
                Some(mode) if mode.as_str() == "PAY_PER_REQUEST" => None,
                _ => t
                    .provisioned_throughput()
                    .and_then(|p| p.read_capacity_units())
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| *n > 0),
            },
            stream,
            deletion_protection: t.deletion_protection_enabled().unwrap_or(false),
            created_at: t.creation_date_time().and_then(|d| d.to_millis().ok()),
            restored_from: t.restore_summary().and_then(pitr::restore_summary),
        }))
    }

    async fn list_tables(&self, region: &str) -> CloudResult<Vec<String>> {
        const OP: &str = "ListTables";
        let ddb = self.clients(region).await.dynamodb;
        let mut names = Vec::new();
        let mut pages = ddb.list_tables().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| errors::map(OP, &e))?;
            names.extend(page.table_names().iter().cloned());
        }
        Ok(names)
    }

    async fn time_to_live(&self, region: &str, name: &str) -> CloudResult<TimeToLive> {
        const OP: &str = "DescribeTimeToLive";
        let out = self
            .clients(region)
            .await
            .dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        let d = out.time_to_live_description();
        Ok(TimeToLive {
            status: d
                .and_then(|d| d.time_to_live_status())
                .map_or("DISABLED", |s| s.as_str())
                .to_owned(),
            attribute: d.and_then(|d| d.attribute_name()).map(str::to_owned),
        })
    }

    async fn list_tags(&self, region: &str, arn: &str) -> CloudResult<BTreeMap<String, String>> {
        const OP: &str = "ListTagsOfResource";
        let ddb = self.clients(region).await.dynamodb;
        let mut tags = BTreeMap::new();
        let mut next: Option<String> = None;
        loop {
            let page = ddb
                .list_tags_of_resource()
                .resource_arn(arn)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| errors::map(OP, &e))?;
            for tag in page.tags() {
                tags.insert(tag.key().to_owned(), tag.value().to_owned());
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(tags),
            }
        }
    }

    async fn set_point_in_time_recovery(
        &self,
        region: &str,
        name: &str,
        on: bool,
    ) -> CloudResult<()> {
        const OP: &str = "UpdateContinuousBackups";
        let spec = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(on)
            .build()
            .map_err(|e| CloudError::new(ErrorKind::Fatal, OP, e.to_string()))?;
        self.clients(region)
            .await
            .dynamodb
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn enable_ttl(&self, region: &str, name: &str, attribute: &str) -> CloudResult<()> {
        const OP: &str = "UpdateTimeToLive";
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(attribute)
            .build()
            .map_err(|e| CloudError::new(ErrorKind::Fatal, OP, e.to_string()))?;
        self.clients(region)
            .await
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn set_stream(&self, region: &str, name: &str, view: Option<&str>) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        let spec = match view {
            Some(view) => StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view)),
            None => StreamSpecification::builder().stream_enabled(false),
        }
        .build()
        .map_err(|e| CloudError::new(ErrorKind::Fatal, OP, e.to_string()))?;
        self.clients(region)
            .await
            .dynamodb
            .update_table()
            .table_name(name)
            .stream_specification(spec)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn set_deletion_protection(&self, region: &str, name: &str, on: bool) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        self.clients(region)
            .await
            .dynamodb
            .update_table()
            .table_name(name)
            .deletion_protection_enabled(on)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn tag_table(
        &self,
        region: &str,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<()> {
        const OP: &str = "TagResource";
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CloudError::new(ErrorKind::Fatal, OP, e.to_string()))?;
        self.clients(region)
            .await
            .dynamodb
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn delete_table(&self, region: &str, name: &str) -> CloudResult<()> {
        const OP: &str = "DeleteTable";
        self.clients(region)
            .await
            .dynamodb
            .delete_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn count_items(&self, region: &str, name: &str, opts: &ScanOptions) -> CloudResult<u64> {
        let ddb = self.clients(region).await.dynamodb;
        scan::count(&ddb, name, opts).await
    }

    async fn digest_items(
        &self,
        region: &str,
        name: &str,
        opts: &ScanOptions,
    ) -> CloudResult<TableDigest> {
        let ddb = self.clients(region).await.dynamodb;
        scan::digest(&ddb, name, opts).await
    }

    async fn get_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<Option<Item>> {
        const OP: &str = "GetItem";
        let out = self
            .clients(region)
            .await
            .dynamodb
            .get_item()
            .table_name(name)
            .set_key(Some(key_map(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(out.item().map(from_item))
    }

    async fn put_item(&self, region: &str, name: &str, item: &Item) -> CloudResult<()> {
        const OP: &str = "PutItem";
        self.clients(region)
            .await
            .dynamodb
            .put_item()
            .table_name(name)
            .set_item(Some(key_map(item)))
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }

    async fn delete_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<()> {
        const OP: &str = "DeleteItem";
        self.clients(region)
            .await
            .dynamodb
            .delete_item()
            .table_name(name)
            .set_key(Some(key_map(key)))
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }
}
