//! Where runs' state lives: a local directory (the embedded default) or an object store
//! (Amazon S3), chosen by `--state URL`.

pub mod objects;

pub use objects::{Condition, Listed, Object, ObjectStore, StoreFacts, Versioning, Written};
