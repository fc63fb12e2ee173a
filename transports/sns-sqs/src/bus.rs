//! [`SnsSqsBus`]: kumi's `Bus` over SNS topics and SQS queues.
//!
//! - Publishing is an SNS `Publish` to the topic's ARN (the topic is created on first use unless
//!   least-privilege), with the headers as message attributes (see [`attributes`](crate::attributes));
//!   FIFO topics get `MessageGroupId` (header `kumi-group-id`, else the topic) and
//!   `MessageDeduplicationId` (header `kumi-deduplication-id`, else the message id).
//! - Each event route gets a queue subscribed to its topic (see [`topology`](crate::topology)) and
//!   a consumer task polling it (see [`consumer`](crate::consumer)).
//! - Not offered: request/reply (use NATS or AMQP) and wildcard subscriptions (SNS has none); both
//!   are startup errors naming the route.
//! - Shutdown stops polling, lets in-flight handlers finish and delete their messages until the
//!   deadline; messages not finished are not deleted and become visible again. Broadcast routes'
//!   per-instance queues are removed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use kumi_core::bus::{Bus, Capabilities, Delivery, DrainReport, Reply, RouteKind, Subscription};
use kumi_core::{Error, ErrorKind, Outgoing, Result};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::attributes::{self, AttributeValue, DEDUPLICATION_ID, GROUP_ID};
use crate::naming;
use crate::topology::{aws_error, unreachable, Queue, SqsRoute, Topology};
use crate::url::SnsSqsUrl;

pub(crate) struct Inner {
    pub(crate) topology: Topology,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) settled: AtomicUsize,
    pub(crate) draining: AtomicBool,
    pub(crate) closed: AtomicBool,
    pub(crate) deadline: Mutex<Option<tokio::time::Instant>>,
    /// Broadcast subscriptions and queues to remove on shutdown.
    pub(crate) ephemeral: Mutex<Vec<(String, String)>>,
}

/// An SNS+SQS connection serving kumi routes. Cheap to clone.
#[derive(Clone)]
pub struct SnsSqsBus {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SnsSqsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsSqsBus")
            .field("url", &self.inner.topology.url.redacted)
            .finish()
    }
}

impl SnsSqsBus {
    /// Builds the SNS and SQS clients from `url` and checks the endpoint answers (an SQS
    /// `ListQueues` of one; an access-denied answer counts as reachable). Fails naming the URL
    /// (credentials removed) when it cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        let url = SnsSqsUrl::parse(url)?;
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
            inner: Arc::new(Inner {
                topology: Topology::new(sns, sqs, url, region),
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
                in_flight: AtomicUsize::new(0),
                settled: AtomicUsize::new(0),
                draining: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                deadline: Mutex::new(None),
                ephemeral: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The SNS client (for SNS features kumi does not wrap).
    pub fn sns_client(&self) -> &aws_sdk_sns::Client {
        &self.inner.topology.sns
    }

    /// The SQS client (for SQS features kumi does not wrap).
    pub fn sqs_client(&self) -> &aws_sdk_sqs::Client {
        &self.inner.topology.sqs
    }

    /// The SNS topic name kumi uses for `topic` (prefix, encoding, `.fifo` when `fifo`).
    pub fn topic_name(&self, topic: &str, fifo: bool) -> String {
        naming::topic_name(&self.inner.topology.url.topic_prefix, topic, fifo)
    }
}

impl Inner {
    fn check_open(&self, topic: &str) -> Result<()> {
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

/// True when `topic` has a wildcard token.
fn has_wildcard(topic: &str) -> bool {
    topic.split('.').any(|t| matches!(t, "*" | ">" | "#"))
}

#[async_trait]
impl Bus for SnsSqsBus {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.persistent = true;
        c.durable = true;
        c.consumer_groups = true;
        c.redelivery = true;
        c.dead_letter = true;
        c.duplicates_possible = true;
        c.ordered = self.inner.topology.url.fifo;
        c.reconnect = true;
        c
    }

    fn url(&self) -> &str {
        &self.inner.topology.url.redacted
    }

    async fn subscribe(&self, sub: Subscription) -> Result<String> {
        let inner = &self.inner;
        let url = &inner.topology.url;
        let route = sub.dispatcher.name().to_owned();
        if inner.draining.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!(
                    "SNS+SQS bus is stopping; cannot subscribe route '{route}' to '{}'",
                    sub.topic
                ),
            ));
        }
        if sub.kind == RouteKind::Request {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "route '{route}' answers requests on '{}', but SNS+SQS has no request/reply; serve it over NATS or AMQP (or make it an event route)",
                    sub.topic
                ),
            ));
        }
        if has_wildcard(&sub.topic) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "route '{route}' subscribes to the pattern '{}', but SNS topics have no wildcards; subscribe to each concrete topic",
                    sub.topic
                ),
            ));
        }
        kumi_core::bus::validate_topic(&sub.topic)?;
        let opts = sub.option::<SqsRoute>().cloned().unwrap_or_default();
        let fifo = url.fifo || opts.fifo;
        let least = url.least_privilege || opts.least_privilege || opts.queue_url.is_some();
        let visibility = opts.visibility_timeout.unwrap_or(url.visibility_timeout);
        let topic_name = naming::topic_name(&url.topic_prefix, &sub.topic, fifo);
        let queue_name = match (&opts.queue_name, &sub.delivery) {
            (Some(name), _) => {
                let mut n = format!("{}{name}", url.queue_prefix);
                if fifo && !n.ends_with(naming::FIFO_SUFFIX) {
                    n.push_str(naming::FIFO_SUFFIX);
                }
                n
            }
            (None, Delivery::Group(_))
                if opts.tomodachi_queue_name
                    || (url.tomodachi_queue_names && !sub.explicit_delivery) =>
            {
                naming::tomodachi_queue_name(&url.queue_prefix, &sub.topic, fifo)
            }
            (None, Delivery::Group(g)) => {
                naming::group_queue_name(&url.queue_prefix, g, &sub.topic, fifo)
            }
            (None, Delivery::Broadcast) => naming::broadcast_queue_name(
                &url.queue_prefix,
                &sub.service.name,
                &sub.name,
                &sub.topic,
                &sub.service.instance_id,
                fifo,
            ),
        };
        let (queue, listens) = if least {
            let queue_url = match &opts.queue_url {
                Some(u) => u.clone(),
                None => inner.topology.get_queue_url(&queue_name).await.map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!(
                            "route '{route}' (least-privilege) needs the existing SQS queue '{queue_name}' subscribed to SNS topic '{topic_name}': {e}"
                        ),
                    )
                })?,
            };
            let name = queue_url
                .rsplit('/')
                .next()
                .unwrap_or(&queue_url)
                .to_owned();
            let listens = format!("SQS queue {name} (existing, least-privilege)");
            (
                Queue {
                    url: queue_url,
                    arn: None,
                    name,
                },
                listens,
            )
        } else {
            let topic_arn = match &opts.topic_arn {
                Some(arn) => arn.clone(),
                None => inner.topology.topic_arn(&topic_name, false).await?,
            };
            let max_receive = if opts.no_sqs_dlq || url.max_receive_margin == 0 {
                None
            } else {
                Some(opts.max_receive_count.unwrap_or_else(|| {
                    sub.dispatcher
                        .retry_policy()
                        .max_attempts
                        .saturating_add(url.max_receive_margin)
                }))
            };
            let queue = inner
                .topology
                .ensure_queue(&queue_name, visibility, max_receive, &topic_arn)
                .await?;
            let queue_arn = queue.arn.clone().unwrap_or_default();
            let sub_arn = inner
                .topology
                .subscribe(&topic_arn, &queue_arn, &opts)
                .await?;
            if sub.delivery == Delivery::Broadcast {
                if let Ok(mut e) = inner.ephemeral.lock() {
                    e.push((sub_arn, queue.url.clone()));
                }
            }
            let listens = format!(
                "SQS queue {} subscribed to SNS topic {topic_name}{}",
                queue.name,
                if sub.delivery == Delivery::Broadcast {
                    " (this instance only)"
                } else {
                    ""
                }
            );
            (queue, listens)
        };
        crate::consumer::Consumer::new(Arc::clone(inner), sub, queue, visibility).start();
        Ok(listens)
    }

    async fn publish(&self, message: Outgoing) -> Result<()> {
        self.inner.check_open(&message.topic)?;
        self.inner.publish(&message).await
    }

    async fn request(&self, message: Outgoing, _timeout: Duration) -> Result<Reply> {
        self.inner.check_open(&message.topic)?;
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "cannot send a request on '{}': SNS+SQS has no request/reply; use a NATS or AMQP bus for requests",
                message.topic
            ),
        ))
    }

    async fn shutdown(&self, deadline: Instant) -> Result<DrainReport> {
        let inner = &self.inner;
        if inner.draining.swap(true, Ordering::AcqRel) {
            return Ok(DrainReport::default());
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        if let Ok(mut d) = inner.deadline.lock() {
            *d = Some(deadline);
        }
        let settled_before = inner.settled.load(Ordering::Relaxed);
        inner.cancel.cancel();
        inner.tracker.close();
        let _ = tokio::time::timeout_at(deadline, inner.tracker.wait()).await;
        let abandoned = inner.in_flight.load(Ordering::Acquire);
        inner.closed.store(true, Ordering::Release);
        let ephemeral = inner
            .ephemeral
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        for (sub_arn, queue_url) in ephemeral {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                inner.topology.remove(&sub_arn, &queue_url),
            )
            .await;
        }
        if abandoned > 0 {
            tracing::error!(
                abandoned,
                bus = %inner.topology.url.redacted,
                "sns+sqs: drain deadline passed with handlers still running; their messages were not deleted and will be redelivered"
            );
        }
        Ok(DrainReport {
            settled: inner.settled.load(Ordering::Relaxed) - settled_before,
            abandoned,
        })
    }
}
