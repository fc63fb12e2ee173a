//! The SQS message body: an SNS notification, tomodachi's direct-send wrapper, or a bare body.
//!
//! Without raw message delivery SNS delivers to SQS a JSON notification
//! (`{"Type": "Notification", "TopicArn", "Message", "MessageId", "Timestamp", "MessageAttributes":
//! {name: {"Type", "Value"}}}`); tomodachi's direct SQS sends use the same shape with
//! `"Type": "Message"`. Both are unwrapped: the payload is `Message`, the attributes come from
//! `MessageAttributes`. Anything else (raw delivery, other producers) is a bare body.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::attributes::AttributeValue;

/// An SQS body, unwrapped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unwrapped {
    /// The message text (the envelope, or a bare payload).
    pub message: String,
    /// Attributes carried in the notification body.
    pub attributes: Vec<(String, AttributeValue)>,
    /// The topic the notification came from.
    pub topic_arn: Option<String>,
    /// `Notification` or `Message` when the body was wrapped.
    pub wrapper: Option<String>,
}

#[derive(Deserialize)]
struct Wrapper {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "TopicArn", default)]
    topic_arn: Option<String>,
    #[serde(rename = "MessageAttributes", default)]
    attributes: Option<serde_json::Map<String, Value>>,
}

/// Unwraps an SQS body.
pub fn unwrap(body: &str) -> Unwrapped {
    let bare = || Unwrapped {
        message: body.to_owned(),
        ..Unwrapped::default()
    };
    if !body.trim_start().starts_with('{') {
        return bare();
    }
    let Ok(w) = serde_json::from_str::<Wrapper>(body) else {
        return bare();
    };
    if w.kind != "Notification" && w.kind != "Message" {
        return bare();
    }
    let mut attributes = Vec::new();
    for (name, v) in w.attributes.unwrap_or_default() {
        let data_type = v["Type"].as_str().unwrap_or("String").to_owned();
        let value = match &v["Value"] {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        let value = if data_type.starts_with("Binary") {
            match base64::engine::general_purpose::STANDARD.decode(&value) {
                Ok(bytes) => AttributeValue::Binary(bytes),
                Err(_) => AttributeValue::Text { data_type, value },
            }
        } else {
            AttributeValue::Text { data_type, value }
        };
        attributes.push((name, value));
    }
    Unwrapped {
        message: w.message,
        attributes,
        topic_arn: w.topic_arn,
        wrapper: Some(w.kind),
    }
}

/// tomodachi's body for a direct SQS send (no SNS): `{"Type": "Message", "Message": ..,
/// "Timestamp": .., "MessageAttributes": {..}}`.
pub fn wrap_direct(message: &str, attributes: &[(String, AttributeValue)]) -> String {
    let attrs: serde_json::Map<String, Value> = attributes
        .iter()
        .map(|(k, v)| {
            let (t, value) = match v {
                AttributeValue::Text { data_type, value } => (data_type.clone(), value.clone()),
                AttributeValue::Binary(b) => (
                    "Binary".to_owned(),
                    base64::engine::general_purpose::STANDARD.encode(b),
                ),
            };
            (k.clone(), serde_json::json!({"Type": t, "Value": value}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    serde_json::json!({
        "Type": "Message",
        "Message": message,
        "Timestamp": now,
        "MessageAttributes": attrs,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_notifications_direct_sends_and_bare_bodies() {
        let n = r#"{"Type": "Notification", "MessageId": "m1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:a___2e_b", "Message": "{\"data\": 1}", "Timestamp": "2026-01-01T00:00:00.000Z", "MessageAttributes": {"traceparent": {"Type": "String", "Value": "00-x"}, "n": {"Type": "Number", "Value": "5"}, "b": {"Type": "Binary", "Value": "aGk="}}}"#;
        let u = unwrap(n);
        assert_eq!(u.message, r#"{"data": 1}"#);
        assert_eq!(u.wrapper.as_deref(), Some("Notification"));
        assert_eq!(
            u.topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:a___2e_b")
        );
        let get = |k: &str| {
            u.attributes
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_text())
        };
        assert_eq!(get("traceparent").as_deref(), Some("00-x"));
        assert_eq!(get("n").as_deref(), Some("5"));
        assert_eq!(get("b").as_deref(), Some("hi"));

        let d = wrap_direct("payload", &[("k".into(), AttributeValue::string("v"))]);
        let u = unwrap(&d);
        assert_eq!(u.message, "payload");
        assert_eq!(u.wrapper.as_deref(), Some("Message"));
        assert_eq!(u.attributes.len(), 1);

        for bare in [
            r#"{"data": 1}"#,
            "plain text",
            r#"{"Type": "Other", "Message": "x"}"#,
        ] {
            let u = unwrap(bare);
            assert_eq!(u.message, bare);
            assert!(u.wrapper.is_none());
        }
    }
}
