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

#[derive(Serialize)]
struct OutEnvelope<'a> {
    service: OutService<'a>,
    metadata: OutMetadata<'a>,
    data: &'a RawValue,
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
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InService<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    uuid: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InMetadata<'a> {
    #[serde(borrow, default)]
    message_uuid: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    protocol_version: std::borrow::Cow<'a, str>,
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(borrow, default)]
    data_encoding: Option<std::borrow::Cow<'a, str>>,
}

impl JsonBase {
    fn data_field(payload: &[u8]) -> Result<(Box<RawValue>, &'static str)> {
        if payload.len() < COMPRESS_THRESHOLD {
            let text = std::str::from_utf8(payload)
                .map_err(|e| Error::codec("json-base payload is not UTF-8 JSON").with_source(e))?;
            let raw = RawValue::from_string(text.to_owned())
                .map_err(|e| Error::codec("json-base payload is not valid JSON").with_source(e))?;
            return Ok((raw, "raw"));
        }
        let mut z = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(payload.len() / 4),
            flate2::Compression::default(),
        );
        z.write_all(payload)
            .and_then(|()| z.finish())
            .map(|compressed| {
                let b64 = base64::engine::general_purpose::STANDARD.encode(compressed);
                // A base64 string needs no escaping, so quoting it is valid JSON.
                let raw = RawValue::from_string(format!("\"{b64}\""))
                    .expect("a quoted base64 string is valid JSON");
                (raw, "base64_gzip_json")
            })
            .map_err(|e| Error::codec("cannot compress json-base payload").with_source(e))
    }
}

impl Envelope for JsonBase {
    fn name(&self) -> &'static str {
        "json-base"
    }

    fn json_style(&self) -> JsonStyle {
        JsonStyle::Python
    }

    fn encode(&self, cx: &EncodeContext<'_>, payload: &[u8]) -> Result<Encoded> {
        let (data, data_encoding) = Self::data_field(payload)?;
        let message_uuid = format!("{}.{}", cx.instance_id, uuid::Uuid::new_v4());
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let envelope = OutEnvelope {
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
            data: &data,
        };
        let body = python_json::to_vec(&envelope)
            .map_err(|e| Error::codec("cannot encode json-base envelope").with_source(e))?;
        Ok(Encoded {
            body: Bytes::from(body),
            message_id: message_uuid,
        })
    }

    fn decode(&self, message: &mut Message) -> Result<()> {
        let body = message.body.clone();
        let env: InEnvelope<'_> = serde_json::from_slice(&body).map_err(|e| {
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
            message.message_id = Some(id.into_owned());
        }
        if let Some(ts) = env.metadata.timestamp.filter(|t| t.is_finite() && *t >= 0.0) {
            message.timestamp = UNIX_EPOCH.checked_add(Duration::from_secs_f64(ts));
        }
        if let Some(service) = env.service {
            message.producer = Producer {
                name: service.name.map(|s| s.into_owned()),
                instance: service.uuid.map(|s| s.into_owned()),
            };
        }
        Ok(())
    }
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
