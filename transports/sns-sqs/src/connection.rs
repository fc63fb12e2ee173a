//! The AWS clients a bus works on: building them from the bus URL (region, endpoint,
//! credentials), checking the endpoint answers, and publishing to SNS topics (with the headers as
//! message attributes; FIFO topics get a group and a deduplication id).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_sns::types::MessageAttributeValue;
use kumi_core::{Error, ErrorKind, Health, Outgoing, Result};
use tokio_util::task::TaskTracker;

use crate::attributes::{self, AttributeValue, DEDUPLICATION_ID, GROUP_ID};
use crate::naming;
use crate::topology::{aws_error, unreachable, Topology};
use crate::url::SnsSqsUrl;

/// The bus's clients and what it keeps about them.
pub(crate) struct Connection {
    pub(crate) topology: Topology,
    closed: AtomicBool,
    /// Broadcast subscriptions and queues to remove on shutdown.
    pub(crate) ephemeral: Mutex<Vec<(String, String)>>,
    /// Messages being handed back to SQS after a route stopped (awaited on shutdown).
    pub(crate) give_back: TaskTracker,
    /// The process health, once an app attached it: not ready while a route cannot receive.
    pub(crate) health: OnceLock<Health>,
}

impl Connection {
    /// Reports whether a route's queue can be received from (`None`: it can) to the process
    /// health, once an app attached it.
    pub(crate) fn report_receive(&self, queue: &str, failure: Option<String>) {
        if let Some(health) = self.health.get() {
            health.set_not_ready(&format!("sqs queue {queue}"), failure);
        }
    }

    /// Builds the SNS and SQS clients from `url` and checks the endpoint answers (an SQS
    /// `ListQueues` of one; an access-denied answer counts as reachable). Fails naming the URL
    /// (credentials removed) when it cannot be reached.
    pub(crate) async fn open(url: SnsSqsUrl) -> Result<Self> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(url.wait_time + Duration::from_secs(10))
                    .build(),
            );
        if let Some(region) = &url.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &url.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        if let Some((key, secret, token)) = &url.credentials {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                key.clone(),
                secret.clone(),
                token.clone(),
                None,
                "kumi-bus-url",
            ));
        }
        let config = loader.load().await;
        let region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or_else(|| {
                Error::config(format!(
                    "bus URL '{}': no AWS region; add region=<region> or set AWS_REGION",
                    url.redacted
                ))
            })?;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        if let Err(e) = sqs.list_queues().max_results(1).send().await {
            if unreachable(&e) {
                let at = url
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| format!("SQS in {region}"));
                return Err(aws_error(
                    ErrorKind::Connect,
                    format!("cannot reach {at} (bus URL '{}')", url.redacted),
                    e,
                ));
            }
            tracing::debug!(bus = %url.redacted, "sqs: ListQueues refused (reachable): {}", aws_sdk_sqs::error::DisplayErrorContext(&e));
        }
        Ok(Self {
            topology: Topology::new(sns, sqs, url, region),
            closed: AtomicBool::new(false),
            ephemeral: Mutex::new(Vec::new()),
            give_back: TaskTracker::new(),
            health: OnceLock::new(),
        })
    }

    /// Publishing fails from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

impl Connection {
    pub(crate) fn check_open(&self, topic: &str) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "SNS+SQS bus {} is stopped; cannot send on '{topic}'",
                    self.topology.url.redacted
                ),
            ));
        }
        Ok(())
    }

    /// Publishes `message` to its SNS topic (FIFO when the URL says so or a group id is given).
    pub(crate) async fn publish(&self, message: &Outgoing) -> Result<()> {
        kumi_core::bus::validate_topic(&message.topic)?;
        let url = &self.topology.url;
        let group = message.headers.get(GROUP_ID).map(str::to_owned);
        let fifo = url.fifo || group.is_some();
        let name = naming::topic_name(&url.topic_prefix, &message.topic, fifo);
        let arn = self.topology.topic_arn(&name, false).await?;
        let mut out = message.clone();
        out.headers.remove(GROUP_ID);
        out.headers.remove(DEDUPLICATION_ID);
        let (text, attrs) = attributes::outgoing(&out);
        let mut req = self.topology.sns.publish().topic_arn(&arn).message(text);
        for (k, v) in attrs {
            req = req.message_attributes(k, sns_attribute(v)?);
        }
        if fifo {
            let dedup = message
                .headers
                .get(DEDUPLICATION_ID)
                .unwrap_or(&message.message_id);
            req = req
                .message_group_id(group.unwrap_or_else(|| message.topic.clone()))
                .message_deduplication_id(dedup_id(dedup));
        }
        req.send().await.map_err(|e| {
            self.topology.forget(&name);
            let kind = if unreachable(&e) {
                ErrorKind::Connect
            } else {
                ErrorKind::Publish
            };
            aws_error(
                kind,
                format!(
                    "cannot publish on '{}' (SNS topic {name}) to {}",
                    message.topic, url.redacted
                ),
                e,
            )
        })?;
        Ok(())
    }
}

/// A deduplication id SNS accepts: at most 128 characters of `[!-~]`.
fn dedup_id(s: &str) -> String {
    let clean: String = s.chars().filter(|c| ('!'..='~').contains(c)).collect();
    if clean.len() <= 128 && !clean.is_empty() {
        clean
    } else {
        naming::sha256_hex(s)
    }
}

fn sns_attribute(v: AttributeValue) -> Result<MessageAttributeValue> {
    let built = match v {
        AttributeValue::Text { data_type, value } => MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(value)
            .build(),
        AttributeValue::Binary(b) => MessageAttributeValue::builder()
            .data_type("Binary")
            .binary_value(aws_sdk_sns::primitives::Blob::new(b))
            .build(),
    };
    built.map_err(|e| Error::new(ErrorKind::Publish, format!("bad message attribute: {e}")))
}
