use std::borrow::Cow;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{python_json, EncodeContext, Encoded, Envelope, JsonStyle};
use crate::error::{Error, Result};
use crate::message::{Message, Producer};

/// The protocol version tomodachi's JSON envelope declares.
pub(crate) const PROTOCOL_VERSION: &str = "tomodachi-json-base--1.0.0";
/// The older protocol name, still accepted on decode.
const LEGACY_PROTOCOL_VERSION: &str = "json_base-wip";
/// `data` JSON texts of this many bytes or more are sent zlib-compressed and base64-encoded.
pub(crate) const COMPRESS_THRESHOLD: usize = 60_000;
/// Largest payload accepted when inflating a compressed `data` (guards against zlib bombs).
const MAX_INFLATED: u64 = 256 * 1024 * 1024;

/// tomodachi's JSON envelope, `tomodachi-json-base--1.0.0` (WIRE.md §1).
///
/// Encoding writes exactly what tomodachi's `JsonBase.build_message` writes: the same keys in the
/// same order, Python's JSON text style, `message_uuid` = `<instance id>.<uuid4>`, the timestamp as
/// epoch seconds, and `data` as zlib + base64 (`data_encoding: "base64_gzip_json"`) once its JSON
/// text reaches 60000 bytes. Decoding accepts both data encodings and the legacy `json_base-wip`
/// protocol name; the payload handed to handlers is the JSON text of `data`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBase;

/// Everything before `data`; the payload (already JSON text) is appended without re-parsing it.
#[derive(Serialize)]
struct OutHead<'a> {
    service: OutService<'a>,
    metadata: OutMetadata<'a>,
}

#[derive(Serialize)]
struct OutService<'a> {
    name: &'a str,
    uuid: &'a str,
}

#[derive(Serialize)]
struct OutMetadata<'a> {
    message_uuid: &'a str,
    protocol_version: &'static str,
    compatible_protocol_versions: [&'static str; 1],
    timestamp: f64,
    topic: &'a str,
    data_encoding: &'static str,
}

#[derive(Deserialize)]
struct InEnvelope<'a> {
    #[serde(borrow, default)]
    service: Option<InService<'a>>,
    #[serde(borrow)]
    metadata: InMetadata<'a>,
    // `data: null` is a value (a `()` payload), not a missing field.
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// An optional string that borrows from the body unless it had escapes to undo (serde's own
/// `Option<Cow<str>>` always copies).
fn opt_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Str<'a>(#[serde(borrow)] Cow<'a, str>);
    Option::<Str<'de>>::deserialize(d).map(|s| s.map(|s| s.0))
}

#[derive(Deserialize)]
struct InService<'a> {
    #[serde(borrow, default, deserialize_with = "opt_str")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    uuid: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InMetadata<'a> {
    #[serde(borrow, default, deserialize_with = "opt_str")]
    message_uuid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    protocol_version: Cow<'a, str>,
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    data_encoding: Option<Cow<'a, str>>,
}

impl JsonBase {
    /// The `data` value as JSON text, and its `data_encoding`.
    fn data_field(payload: &[u8]) -> Result<(Cow<'_, [u8]>, &'static str)> {
        if payload.len() < COMPRESS_THRESHOLD {
            return Ok((Cow::Borrowed(payload), "raw"));
        }
        let mut z = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(payload.len() / 4),
            flate2::Compression::default(),
        );
        let compressed = z
            .write_all(payload)
            .and_then(|()| z.finish())
            .map_err(|e| Error::codec("cannot compress json-base payload").with_source(e))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(compressed);
        // A base64 string needs no escaping: quoting it makes a JSON string.
        let mut quoted = Vec::with_capacity(b64.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(b64.as_bytes());
        quoted.push(b'"');
        Ok((Cow::Owned(quoted), "base64_gzip_json"))
    }
}

impl Envelope for JsonBase {
    fn name(&self) -> &'static str {
        "json-base"
    }

    fn json_style(&self) -> JsonStyle {
        JsonStyle::Python
    }

    fn requires_json(&self) -> bool {
        true
    }

    fn encode(&self, cx: &EncodeContext<'_>, payload: &[u8]) -> Result<Encoded> {
        let (data, data_encoding) = Self::data_field(payload)?;
        let message_uuid = message_uuid(cx.instance_id);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let head = OutHead {
            service: OutService {
                name: cx.service_name,
                uuid: cx.instance_id,
            },
            metadata: OutMetadata {
                message_uuid: &message_uuid,
                protocol_version: PROTOCOL_VERSION,
                compatible_protocol_versions: [LEGACY_PROTOCOL_VERSION],
                timestamp,
                topic: cx.topic,
                data_encoding,
            },
        };
        // The fixed keys and values take about 230 bytes; the rest is sized exactly enough.
        let capacity = 256
            + cx.service_name.len()
            + cx.instance_id.len()
            + message_uuid.len()
            + cx.topic.len()
            + data.len();
        let mut body = python_json::to_vec_with_capacity(&head, capacity)
            .map_err(|e| Error::codec("cannot encode json-base envelope").with_source(e))?;
        // `{"service": .., "metadata": ..}` becomes `{"service": .., "metadata": .., "data": <payload>}`.
        body.pop();
        body.reserve(data.len() + 11);
        body.extend_from_slice(b", \"data\": ");
        body.extend_from_slice(&data);
        body.push(b'}');
        Ok(Encoded {
            body: Bytes::from(body),
            message_id: message_uuid,
        })
    }

    fn decode(&self, message: &mut Message) -> Result<()> {
        let body = &message.body;
        let env: InEnvelope<'_> = serde_json::from_slice(body).map_err(|e| {
            Error::codec(format!(
                "message on topic '{}' is not a json-base envelope",
                message.topic
            ))
            .with_source(e)
        })?;
        let version = env.metadata.protocol_version.as_ref();
        if version != PROTOCOL_VERSION && version != LEGACY_PROTOCOL_VERSION {
            return Err(Error::codec(format!(
                "message on topic '{}' has protocol_version '{version}', expected '{PROTOCOL_VERSION}'",
                message.topic
            )));
        }
        let data = env.data.ok_or_else(|| {
            Error::codec(format!(
                "json-base message on topic '{}' has no data",
                message.topic
            ))
        })?;
        message.payload = match env.metadata.data_encoding.as_deref().unwrap_or("raw") {
            "raw" => body.slice_ref(data.get().as_bytes()),
            "base64_gzip_json" => inflate(data.get(), &message.topic)?,
            other => {
                return Err(Error::codec(format!(
                    "json-base message on topic '{}' has unknown data_encoding '{other}'",
                    message.topic
                )))
            }
        };
        if let Some(id) = env.metadata.message_uuid {
            // Transports often already carry the same id; keep that allocation.
            if message.message_id.as_deref() != Some(id.as_ref()) {
                message.message_id = Some(id.into_owned());
            }
        }
        if let Some(ts) = env
            .metadata
            .timestamp
            .filter(|t| t.is_finite() && *t >= 0.0)
        {
            message.timestamp = Duration::try_from_secs_f64(ts)
                .ok()
                .and_then(|d| UNIX_EPOCH.checked_add(d));
        }
        if let Some(service) = env.service {
            message.producer = match (&service.name, &service.uuid) {
                // Usually both are slices of the body: kept as ranges of it, no copy.
                (None | Some(Cow::Borrowed(_)), None | Some(Cow::Borrowed(_))) => {
                    let range = |s: &Option<Cow<'_, str>>| {
                        let s = s.as_deref()?;
                        let start = (s.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
                        Some(start..start + s.len())
                    };
                    Producer::in_source(body, range(&service.name), range(&service.uuid))
                }
                // Escaped strings were unescaped into new ones.
                _ => Producer::new(
                    service.name.map(|s| Bytes::from(s.into_owned())),
                    service.uuid.map(|s| Bytes::from(s.into_owned())),
                ),
            };
        }
        Ok(())
    }
}

/// `<instance id>.<uuid4>`, tomodachi's message id, built without the formatting machinery.
fn message_uuid(instance_id: &str) -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    let mut out = String::with_capacity(instance_id.len() + 1 + id.len());
    out.push_str(instance_id);
    out.push('.');
    out.push_str(id);
    out
}

fn inflate(data: &str, topic: &str) -> Result<Bytes> {
    let b64: &str = serde_json::from_str(data).map_err(|e| {
        Error::codec(format!(
            "compressed json-base data on topic '{topic}' is not a string"
        ))
        .with_source(e)
    })?;
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| {
            Error::codec(format!(
                "compressed json-base data on topic '{topic}' is not base64"
            ))
            .with_source(e)
        })?;
    let mut out = Vec::with_capacity(compressed.len() * 4);
    flate2::read::ZlibDecoder::new(&compressed[..])
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Error::codec(format!(
                "compressed json-base data on topic '{topic}' is not zlib"
            ))
            .with_source(e)
        })?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(Error::codec(format!(
            "compressed json-base data on topic '{topic}' inflates beyond {MAX_INFLATED} bytes"
        )));
    }
    serde_json::from_slice::<&RawValue>(&out).map_err(|e| {
        Error::codec(format!(
            "compressed json-base data on topic '{topic}' is not JSON"
        ))
        .with_source(e)
    })?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn encode(payload: &Value) -> (Value, String, Encoded) {
        let text = python_json::to_vec(payload).unwrap();
        let cx = EncodeContext {
            topic: "orders.created",
            service_name: "orders",
            instance_id: "2b7a0e6c-1d0a-4c55-9f0e-2ad1b1a3c9d4",
        };
        let encoded = JsonBase.encode(&cx, &text).unwrap();
        let body = String::from_utf8(encoded.body.to_vec()).unwrap();
        (serde_json::from_str(&body).unwrap(), body, encoded)
    }

    #[test]
    fn encodes_every_wire_field() {
        let (v, body, encoded) = encode(&json!({"id": 1, "name": "tea"}));
        // Exactly three top-level keys, in tomodachi's order.
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 3);
        assert!(body.starts_with(r#"{"service": {"name": "orders", "uuid": "2b7a0e6c-1d0a-4c55-9f0e-2ad1b1a3c9d4"}, "metadata": {"message_uuid": "2b7a0e6c-1d0a-4c55-9f0e-2ad1b1a3c9d4."#), "{body}");
        assert_eq!(
            v["service"],
            json!({"name": "orders", "uuid": "2b7a0e6c-1d0a-4c55-9f0e-2ad1b1a3c9d4"})
        );
        let md = &v["metadata"];
        assert_eq!(md.as_object().unwrap().len(), 6);
        let uuid = md["message_uuid"].as_str().unwrap();
        let (prefix, random) = uuid.split_once('.').unwrap();
        assert_eq!(prefix, "2b7a0e6c-1d0a-4c55-9f0e-2ad1b1a3c9d4");
        assert!(uuid::Uuid::parse_str(random).is_ok(), "{random}");
        assert_eq!(uuid, encoded.message_id);
        assert_eq!(md["protocol_version"], "tomodachi-json-base--1.0.0");
        assert_eq!(md["compatible_protocol_versions"], json!(["json_base-wip"]));
        let ts = md["timestamp"].as_f64().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now - ts).abs() < 5.0, "epoch seconds as a float: {ts}");
        assert_eq!(md["topic"], "orders.created");
        assert_eq!(md["data_encoding"], "raw");
        assert_eq!(v["data"], json!({"id": 1, "name": "tea"}));
        // Python's json.dumps text style, key order service, metadata, data.
        let tail = r#", "topic": "orders.created", "data_encoding": "raw"}, "data": {"id": 1, "name": "tea"}}"#;
        assert!(body.ends_with(tail), "{body}");
        assert!(body.contains(r#""protocol_version": "tomodachi-json-base--1.0.0", "compatible_protocol_versions": ["json_base-wip"], "timestamp": "#));
    }

    #[test]
    fn compresses_from_60000_bytes_with_zlib() {
        // The data text `"xxx…"` is exactly 60000 bytes with 59998 x's: compressed.
        let (v, _, _) = encode(&json!("x".repeat(59_998)));
        assert_eq!(v["metadata"]["data_encoding"], "base64_gzip_json");
        let b64 = v["data"].as_str().unwrap();
        assert!(b64.starts_with("eJ"), "zlib (78 9c) in base64");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let mut text = String::new();
        flate2::read::ZlibDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, format!("\"{}\"", "x".repeat(59_998)));
        // One byte less stays raw.
        let (v, _, _) = encode(&json!("x".repeat(59_997)));
        assert_eq!(v["metadata"]["data_encoding"], "raw");
    }

    #[test]
    fn decodes_its_own_output_both_forms() {
        for payload in [json!({"a": [1, 2]}), json!({"big": "é".repeat(40_000)})] {
            let (_, _, encoded) = encode(&payload);
            let mut m = Message::new("orders.created", encoded.body);
            JsonBase.decode(&mut m).unwrap();
            assert_eq!(
                serde_json::from_slice::<Value>(&m.payload).unwrap(),
                payload
            );
            assert_eq!(m.message_id.as_deref(), Some(encoded.message_id.as_str()));
            assert_eq!(m.producer.name(), Some("orders"));
            assert!(m.timestamp.is_some());
        }
    }

    #[test]
    fn decodes_a_tomodachi_fixture_zero_copy() {
        // Written by hand from WIRE.md §1, as Python's json.dumps prints it.
        let body = Bytes::from_static(br#"{"service": {"name": "legacy", "uuid": "5f0c"}, "metadata": {"message_uuid": "5f0c.9d1e", "protocol_version": "tomodachi-json-base--1.0.0", "compatible_protocol_versions": ["json_base-wip"], "timestamp": 1732700000.5, "topic": "orders.created", "data_encoding": "raw"}, "data": {"id": 9, "note": "caf\u00e9"}}"#);
        let mut m = Message::new("orders.created", body.clone());
        JsonBase.decode(&mut m).unwrap();
        assert_eq!(&m.payload[..], br#"{"id": 9, "note": "caf\u00e9"}"#);
        assert_eq!(
            m.payload.as_ptr(),
            body[body.len() - m.payload.len() - 1..].as_ptr(),
            "payload is a slice of the body"
        );
        assert_eq!(m.message_id.as_deref(), Some("5f0c.9d1e"));
        assert_eq!(m.producer.name(), Some("legacy"));
        assert_eq!(m.producer.instance(), Some("5f0c"));
        assert_eq!(
            m.timestamp,
            UNIX_EPOCH.checked_add(Duration::from_secs_f64(1732700000.5))
        );
        // An escaped producer name is unescaped.
        let body = Bytes::from_static(br#"{"service": {"name": "caf\u00e9", "uuid": "i-1"}, "metadata": {"protocol_version": "tomodachi-json-base--1.0.0"}, "data": 1}"#);
        let mut m = Message::new("orders.created", body);
        JsonBase.decode(&mut m).unwrap();
        assert_eq!(m.producer.name(), Some("café"));
        assert_eq!(m.producer.instance(), Some("i-1"));
    }

    #[test]
    fn rejects_what_it_cannot_read_with_named_errors() {
        for (body, needle) in [
            (&b"not json"[..], "not a json-base envelope"),
            (br#"{"metadata": {"protocol_version": "other"}, "data": 1}"#, "protocol_version 'other'"),
            (br#"{"metadata": {"protocol_version": "tomodachi-json-base--1.0.0"}}"#, "has no data"),
            (br#"{"metadata": {"protocol_version": "tomodachi-json-base--1.0.0", "data_encoding": "proto"}, "data": "x"}"#, "unknown data_encoding 'proto'"),
            (br#"{"metadata": {"protocol_version": "tomodachi-json-base--1.0.0", "data_encoding": "base64_gzip_json"}, "data": "!!"}"#, "not base64"),
            (br#"{"metadata": {"protocol_version": "tomodachi-json-base--1.0.0", "data_encoding": "base64_gzip_json"}, "data": "aGVsbG8="}"#, "not zlib"),
        ] {
            let mut m = Message::new("t.x", Bytes::copy_from_slice(body));
            let e = JsonBase.decode(&mut m).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("t.x"), "{e}");
        }
        // An absurd timestamp is ignored, not a panic.
        let mut m = Message::new("t", Bytes::from_static(br#"{"metadata": {"protocol_version": "tomodachi-json-base--1.0.0", "timestamp": 1e300}, "data": 1}"#));
        JsonBase.decode(&mut m).unwrap();
        assert!(m.timestamp.is_none());
        // `null` data is a payload, not a missing one.
        let mut m = Message::new("t", Bytes::from_static(br#"{"metadata": {"protocol_version": "tomodachi-json-base--1.0.0"}, "data": null}"#));
        JsonBase.decode(&mut m).unwrap();
        assert_eq!(&m.payload[..], b"null");
        // The legacy protocol name is accepted.
        let mut m = Message::new(
            "t",
            Bytes::from_static(
                br#"{"metadata": {"protocol_version": "json_base-wip"}, "data": 1}"#,
            ),
        );
        JsonBase.decode(&mut m).unwrap();
        assert_eq!(&m.payload[..], b"1");
    }
}
