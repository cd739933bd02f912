//! DynamoDB attribute values to and from drover's items (string values), and the canonical
//! encoding of an item of any attribute types that digests hash.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use drover_engine::ports::{Item, Value};

/// A drover item value as a DynamoDB string attribute.
fn to_attribute_value(v: &Value) -> AttributeValue {
    match v {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.clone()),
        Value::B(b) => AttributeValue::B(aws_smithy_types::Blob::new(b.clone())),
    }
}

/// A DynamoDB item as a drover item: its string, number and binary attributes (attributes of
/// other types are left out: drover reads only keys and its marker).
pub(crate) fn from_item(item: &HashMap<String, AttributeValue>) -> Item {
    item.iter()
        .filter_map(|(k, v)| {
            let value = match v {
                AttributeValue::S(s) => Value::S(s.clone()),
                AttributeValue::N(n) => Value::N(n.clone()),
                AttributeValue::B(b) => Value::B(b.as_ref().to_vec()),
                _ => return None,
            };
            Some((k.clone(), value))
        })
        .collect()
}

/// A canonical encoding of an item of any attribute types (attributes and map keys sorted,
/// sets sorted), for digests.
pub(crate) fn canonical(item: &HashMap<String, AttributeValue>) -> Vec<u8> {
    fn value(v: &AttributeValue, out: &mut Vec<u8>) {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.join("\u{1d}")
        };
        match v {
            AttributeValue::S(s) => out.extend_from_slice(format!("S:{s}").as_bytes()),
            AttributeValue::N(n) => out.extend_from_slice(format!("N:{n}").as_bytes()),
            AttributeValue::B(b) => {
                out.extend_from_slice(b"B:");
                out.extend_from_slice(b.as_ref());
            }
            AttributeValue::Bool(b) => out.extend_from_slice(format!("BOOL:{b}").as_bytes()),
            AttributeValue::Null(_) => out.extend_from_slice(b"NULL"),
            AttributeValue::Ss(v) => out.extend_from_slice(format!("SS:{}", sorted(v)).as_bytes()),
            AttributeValue::Ns(v) => out.extend_from_slice(format!("NS:{}", sorted(v)).as_bytes()),
            AttributeValue::Bs(v) => {
                let mut v: Vec<&[u8]> = v.iter().map(AsRef::as_ref).collect();
                v.sort_unstable();
                out.extend_from_slice(b"BS:");
                for b in v {
                    out.extend_from_slice(b);
                    out.push(0x1d);
                }
            }
            AttributeValue::L(items) => {
                out.extend_from_slice(b"L[");
                for i in items {
                    value(i, out);
                    out.push(0x1d);
                }
                out.push(b']');
            }
            AttributeValue::M(map) => {
                out.extend_from_slice(b"M{");
                out.extend_from_slice(&canonical(map));
                out.push(b'}');
            }
            _ => out.extend_from_slice(b"?"),
        }
    }
    let mut keys: Vec<&String> = item.keys().collect();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        out.extend_from_slice(k.as_bytes());
        out.push(0x1f);
        value(&item[k], &mut out);
        out.push(0x1e);
    }
    out
}

/// A drover item (or key) as DynamoDB attributes, every value a string.
pub(crate) fn key_map(key: &Item) -> HashMap<String, AttributeValue> {
    key.iter().map(|(k, v)| (k.clone(), to_attribute_value(v))).collect()
}
