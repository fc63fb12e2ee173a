use std::borrow::Cow;
use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
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
/// The size of the last payload written in place, to size the next message's buffer.
static LAST_PAYLOAD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(256);
/// Largest payload accepted when inflating a compressed `data` (guards against zlib bombs).
const MAX_INFLATED: u64 = 256 * 1024 * 1024;

/// tomodachi's JSON envelope, `tomodachi-json-base--1.0.0` (`docs/wire.md`, "JsonBase envelope").
///
/// Encoding writes exactly what tomodachi's `JsonBase.build_message` writes: the same keys in the
/// same order, Python's JSON text style, `message_uuid` = `<instance id>.<uuid4>`, the timestamp as
/// epoch seconds, and `data` as zlib + base64 (`data_encoding: "base64_gzip_json"`) once its JSON
/// text reaches 60000 bytes. Decoding accepts both data encodings and the legacy `json_base-wip`
/// protocol name; the payload handed to handlers is the JSON text of `data`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBase;

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
        let mut body = head(cx, &message_uuid, data_encoding, data.len());
        body.extend_from_slice(&data);
        body.push(b'}');
        Ok(Encoded {
            body: Bytes::from(body),
            message_id: message_uuid,
        })
    }

    fn encode_with(
        &self,
        cx: &EncodeContext<'_>,
        write: &mut dyn FnMut(&mut Vec<u8>) -> Result<()>,
    ) -> Result<Encoded> {
        let message_uuid = message_uuid(cx.instance_id);
        // Room for a payload as large as the last one: buffers sized to what is sent (no
        // regrowth, no slack held while the message is queued).
        let guess = LAST_PAYLOAD.load(std::sync::atomic::Ordering::Relaxed);
        let mut body = head(cx, &message_uuid, "raw", guess + 1);
        let start = body.len();
        write(&mut body)?;
        LAST_PAYLOAD.store(
            (body.len() - start).min(COMPRESS_THRESHOLD),
            std::sync::atomic::Ordering::Relaxed,
        );
        if body.len() - start >= COMPRESS_THRESHOLD {
            // A large payload is sent compressed, which the head written says otherwise.
            let payload = body.split_off(start);
            return self.encode(cx, &payload);
        }
        body.push(b'}');
        Ok(Encoded {
            body: Bytes::from(body),
            message_id: message_uuid,
        })
    }

    fn decode(&self, message: &mut Message) -> Result<()> {
        if let Some(canonical) = Canonical::parse(&message.body) {
            canonical.apply(message);
            return Ok(());
        }
        self.decode_any(message)
    }
}

/// An envelope laid out exactly as tomodachi and kumi write it (keys in their order, Python's
/// separators, plain strings, raw data), read without a JSON parser except for checking `data`:
/// the usual case. Anything else goes through [`JsonBase::decode_any`].
struct Canonical {
    name: std::ops::Range<usize>,
    uuid: std::ops::Range<usize>,
    message_uuid: std::ops::Range<usize>,
    timestamp: f64,
    data: std::ops::Range<usize>,
}

/// A cursor over an envelope's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    /// Steps over `literal`, if it is next.
    fn literal(&mut self, literal: &[u8]) -> Option<()> {
        let end = self.at.checked_add(literal.len())?;
        (self.bytes.get(self.at..end)? == literal).then(|| self.at = end)
    }

    /// Steps over a string of printable ASCII without escapes; its contents' range.
    fn plain_str(&mut self) -> Option<std::ops::Range<usize>> {
        self.literal(b"\"")?;
        let start = self.at;
        let len = self.bytes[start..].iter().position(|&b| b == b'"')?;
        let text = &self.bytes[start..start + len];
        if !text
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
        {
            return None;
        }
        self.at = start + len + 1;
        Some(start..start + len)
    }

    /// Steps over a JSON number; its value.
    fn number(&mut self) -> Option<f64> {
        let start = self.at;
        let len = self.bytes[start..]
            .iter()
            .position(|b| !matches!(b, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E'))?;
        self.at = start + len;
        // serde_json's reading, so that both readers agree to the last bit.
        serde_json::from_slice(&self.bytes[start..start + len]).ok()
    }
}

impl Canonical {
    fn parse(body: &[u8]) -> Option<Self> {
        let mut c = Cursor { bytes: body, at: 0 };
        c.literal(b"{\"service\": {\"name\": ")?;
        let name = c.plain_str()?;
        c.literal(b", \"uuid\": ")?;
        let uuid = c.plain_str()?;
        c.literal(b"}, \"metadata\": {\"message_uuid\": ")?;
        let message_uuid = c.plain_str()?;
        c.literal(b", \"protocol_version\": \"")?;
        c.literal(PROTOCOL_VERSION.as_bytes())?;
        c.literal(b"\", \"compatible_protocol_versions\": [\"")?;
        c.literal(LEGACY_PROTOCOL_VERSION.as_bytes())?;
        c.literal(b"\"], \"timestamp\": ")?;
        let timestamp = c.number()?;
        c.literal(b", \"topic\": ")?;
        c.plain_str()?;
        c.literal(b", \"data_encoding\": \"raw\"}, \"data\": ")?;
        let end = body.len().checked_sub(1)?;
        if body[end] != b'}' || c.at > end {
            return None;
        }
        let data = c.at..end;
        // The data must be one JSON value, as a parser would have found it.
        serde_json::from_slice::<serde::de::IgnoredAny>(&body[data.clone()]).ok()?;
        Some(Self {
            name,
            uuid,
            message_uuid,
            timestamp,
            data,
        })
    }

    fn apply(self, message: &mut Message) {
        let body = &message.body;
        // Plain ASCII, checked in `parse`.
        let text = |r: &std::ops::Range<usize>| std::str::from_utf8(&body[r.clone()]).unwrap_or("");
        let id = text(&self.message_uuid);
        // Transports often already carry the same id; keep that allocation.
        if message.message_id.as_deref() != Some(id) {
            message.message_id = Some(id.to_owned());
        }
        if let Some(ts) = timestamp(Some(self.timestamp)) {
            message.timestamp = Some(ts);
        }
        message.producer = Producer::in_source(body, Some(self.name), Some(self.uuid));
        message.payload = body.slice(self.data);
    }
}

/// The time a `timestamp` field says, if it is a valid one.
fn timestamp(ts: Option<f64>) -> Option<SystemTime> {
    let ts = ts.filter(|t| t.is_finite() && *t >= 0.0)?;
    Duration::try_from_secs_f64(ts)
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d))
}

impl JsonBase {
    /// Decodes any JSON-base envelope with a JSON parser.
    fn decode_any(&self, message: &mut Message) -> Result<()> {
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
        if let Some(ts) = timestamp(env.metadata.timestamp) {
            message.timestamp = Some(ts);
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

/// The envelope up to its `data` value, with room for `data_len` more bytes: written by hand, in
/// tomodachi's key order and Python's text style (`python_json`), cheaper than a serializer for
/// a fixed shape of mostly plain ASCII.
fn head(
    cx: &EncodeContext<'_>,
    message_uuid: &str,
    data_encoding: &str,
    data_len: usize,
) -> Vec<u8> {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    // The fixed keys and values take 231 bytes, the timestamp up to 24; the rest is sized
    // exactly enough.
    let capacity = 255
        + data_encoding.len()
        + cx.service_name.len()
        + cx.instance_id.len()
        + message_uuid.len()
        + cx.topic.len()
        + data_len;
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(b"{\"service\": {\"name\": ");
    python_json::write_str(&mut body, cx.service_name);
    body.extend_from_slice(b", \"uuid\": ");
    python_json::write_str(&mut body, cx.instance_id);
    body.extend_from_slice(b"}, \"metadata\": {\"message_uuid\": ");
    python_json::write_str(&mut body, message_uuid);
    body.extend_from_slice(b", \"protocol_version\": \"");
    body.extend_from_slice(PROTOCOL_VERSION.as_bytes());
    body.extend_from_slice(b"\", \"compatible_protocol_versions\": [\"");
    body.extend_from_slice(LEGACY_PROTOCOL_VERSION.as_bytes());
    body.extend_from_slice(b"\"], \"timestamp\": ");
    python_json::write_f64(&mut body, timestamp);
    body.extend_from_slice(b", \"topic\": ");
    python_json::write_str(&mut body, cx.topic);
    body.extend_from_slice(b", \"data_encoding\": \"");
    body.extend_from_slice(data_encoding.as_bytes());
    body.extend_from_slice(b"\"}, \"data\": ");
    body
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

    /// What decoding made of a message (payload, id, timestamp, producer name and instance), for
    /// comparing the two decoders.
    type Decoded = (
        String,
        Option<String>,
        Option<SystemTime>,
        Option<String>,
        Option<String>,
    );

    fn decoded(body: &str, canonical: bool) -> Result<Decoded> {
        let mut m = Message::new("orders.created", Bytes::from(body.to_owned()));
        if canonical {
            Canonical::parse(&m.body)
                .ok_or_else(|| Error::codec("not canonical"))?
                .apply(&mut m);
        } else {
            JsonBase.decode_any(&mut m)?;
        }
        Ok((
            String::from_utf8(m.payload.to_vec()).unwrap(),
            m.message_id,
            m.timestamp,
            m.producer.name().map(str::to_owned),
            m.producer.instance().map(str::to_owned),
        ))
    }

    #[test]
    fn the_head_has_room_for_its_data_without_growing() {
        for (name, instance, topic) in [
            ("a", "b", "c"),
            ("orders", "0123456789012345678901", "orders.created.eu"),
        ] {
            let cx = EncodeContext {
                topic,
                service_name: name,
                instance_id: instance,
            };
            let id = message_uuid(instance);
            for data_len in [0, 1, 90, 5000] {
                let body = head(&cx, &id, "base64_gzip_json", data_len);
                assert!(
                    body.capacity() >= body.len() + data_len,
                    "{name} {data_len}"
                );
            }
        }
    }

    #[test]
    fn the_canonical_reader_agrees_with_the_parser_and_leaves_the_rest_to_it() {
        let cx = EncodeContext {
            topic: "orders.created",
            service_name: "orders",
            instance_id: "i-1",
        };
        let written = JsonBase
            .encode_with(&cx, &mut |out: &mut Vec<u8>| {
                JsonStyle::Python.write(out, &json!({"id": 7, "tags": ["a", "b"], "x": 1.5}))
            })
            .unwrap();
        let body = String::from_utf8(written.body.to_vec()).unwrap();
        let fast = decoded(&body, true).expect("kumi's own envelopes are canonical");
        assert_eq!(fast, decoded(&body, false).unwrap());
        assert_eq!(fast.0, r#"{"id": 7, "tags": ["a", "b"], "x": 1.5}"#);
        assert_eq!(fast.1.as_deref(), Some(written.message_id.as_str()));
        // Not canonical: escapes, other spacing, other encodings, broken or trailing data. The
        // parser decides (and refuses what is not JSON).
        for other in [
            body.replace(r#""name": "orders""#, r#""name": "ord\u0065rs""#),
            body.replace(", ", ","),
            body.replacen(r#""data": {"#, r#""data": {"broken"#, 1),
            format!("{body} "),
            body.replace("}}", "}} {}"),
            body.replace(r#""data": {"#, r#""data": ["#),
        ] {
            assert!(decoded(&other, true).is_err(), "{other:?}");
            let _ = decoded(&other, false);
        }
        // Written by a smaller hand: still canonical and the same.
        let python = r#"{"service": {"name": "py", "uuid": "u"}, "metadata": {"message_uuid": "u.1", "protocol_version": "tomodachi-json-base--1.0.0", "compatible_protocol_versions": ["json_base-wip"], "timestamp": 1700000000.25, "topic": "t", "data_encoding": "raw"}, "data": null}"#;
        assert_eq!(
            decoded(python, true).unwrap(),
            decoded(python, false).unwrap()
        );
        assert_eq!(decoded(python, true).unwrap().0, "null");
        // Large payloads written in place are compressed as `encode` would.
        let big = "x".repeat(COMPRESS_THRESHOLD);
        let written = JsonBase
            .encode_with(&cx, &mut |out: &mut Vec<u8>| {
                JsonStyle::Python.write(out, &big)
            })
            .unwrap();
        let v: Value = serde_json::from_slice(&written.body).unwrap();
        assert_eq!(v["metadata"]["data_encoding"], "base64_gzip_json");
        let mut m = Message::new("orders.created", written.body);
        JsonBase.decode(&mut m).unwrap();
        assert_eq!(m.payload.len(), big.len() + 2);
    }

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
        // Written by hand from `docs/wire.md` ("JsonBase envelope"), as Python's json.dumps prints it.
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
