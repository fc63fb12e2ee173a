//! Topics, queues, subscriptions and policies (`docs/wire.md`, "SNS+SQS"), and the [`SqsRoute`] option that tunes
//! them per route.
//!
//! For an event route kumi (unless least-privilege):
//!
//! 1. creates the SNS topic (`CreateTopic` is idempotent; FIFO topics get `FifoTopic=true`);
//! 2. creates the route's SQS queue (name: see [`crate::naming`]) and, unless disabled, its
//!    SQS dead-letter queue `<queue>-dlq` (14 days retention), wired with
//!    `RedrivePolicy {deadLetterTargetArn, maxReceiveCount}` where `maxReceiveCount` is the route's
//!    attempts plus a margin: a safety net only — kumi itself dead-letters exhausted and
//!    undecodable messages to the kumi dead-letter topic (`dlq.<topic>`) before that;
//! 3. sets the queue's `VisibilityTimeout` and a `Policy` allowing `sqs:SendMessage` from the
//!    topic ARN only (`aws:SourceArn` condition);
//! 4. subscribes the queue to the topic (`Protocol=sqs`) and sets `RawMessageDelivery` and the
//!    `FilterPolicy` (and `FilterPolicyScope`) the route asks for;
//! 5. keeps the route's dead letters: creates the SNS dead-letter topic (`dlq.<topic>`, or the
//!    route's own dead-letter topic) and the SQS queue of the service's group on it
//!    (`group_queue_name(service, dead-letter topic)`, 14 days retention), subscribed to it with
//!    the same policy — the queue a kumi route on the dead-letter topic in the service's default
//!    group reads, so a dead letter is kept whether or not such a route runs.
//!
//! In least-privilege mode ([`SqsRoute::least_privilege`] or `?least_privilege=true`) kumi creates
//! and changes nothing: it looks up the queue URL (or takes the one given) and receives from it,
//! and warns at startup when the dead-letter queue of step 5 does not exist (dead letters are then
//! lost unless another subscriber keeps them);
//! publishes go to the topic ARN built from `account_id` (or given). The IAM permissions needed are
//! then `sqs:ReceiveMessage`, `sqs:DeleteMessage`, `sqs:ChangeMessageVisibility`,
//! `sqs:GetQueueUrl` (unless the URL is given) and `sns:Publish`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_sns::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::types::QueueAttributeName;
use kumi_core::bus::{Sharing, Subscription};
use kumi_core::{Error, ErrorKind, Result};

use crate::naming;
use crate::url::SnsSqsUrl;

/// Where an SNS filter policy applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterScope {
    /// Message attributes (SNS's default).
    MessageAttributes,
    /// The message body (JSON).
    MessageBody,
}

/// Route option for SNS+SQS routes: `.option(SqsRoute::new().visibility_timeout(..))`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqsRoute {
    pub(crate) queue_name: Option<String>,
    pub(crate) queue_url: Option<String>,
    pub(crate) topic_arn: Option<String>,
    pub(crate) fifo: bool,
    pub(crate) filter_policy: Option<String>,
    pub(crate) filter_scope: Option<FilterScope>,
    pub(crate) raw_delivery: bool,
    pub(crate) visibility_timeout: Option<Duration>,
    pub(crate) least_privilege: bool,
    pub(crate) tomodachi_queue_name: bool,
    pub(crate) max_receive_count: Option<u32>,
    pub(crate) no_sqs_dlq: bool,
}

impl SqsRoute {
    /// Defaults: a kumi-named queue, notification bodies, the URL's visibility timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this queue name (the URL's `queue_prefix` is prepended).
    pub fn queue_name(mut self, name: impl Into<String>) -> Self {
        self.queue_name = Some(name.into());
        self
    }

    /// Uses tomodachi's competing-consumer queue name (`queue_prefix + sha256_hex(encoded topic)`).
    pub fn tomodachi_queue_name(mut self) -> Self {
        self.tomodachi_queue_name = true;
        self
    }

    /// Receives from this existing queue (implies least-privilege for the queue).
    pub fn queue_url(mut self, url: impl Into<String>) -> Self {
        self.queue_url = Some(url.into());
        self
    }

    /// The topic's ARN, when it exists already (no `CreateTopic`).
    pub fn topic_arn(mut self, arn: impl Into<String>) -> Self {
        self.topic_arn = Some(arn.into());
        self
    }

    /// FIFO topic and queue (`.fifo`): ordered per message group, deduplicated.
    pub fn fifo(mut self) -> Self {
        self.fifo = true;
        self
    }

    /// An SNS filter policy (JSON) on the subscription.
    pub fn filter_policy(mut self, policy: impl Into<String>) -> Self {
        self.filter_policy = Some(policy.into());
        self
    }

    /// Where the filter policy applies (default: message attributes).
    pub fn filter_scope(mut self, scope: FilterScope) -> Self {
        self.filter_scope = Some(scope);
        self
    }

    /// SNS raw message delivery: the SQS body is the message itself, attributes become SQS
    /// message attributes (at most 10).
    pub fn raw_message_delivery(mut self) -> Self {
        self.raw_delivery = true;
        self
    }

    /// The queue's visibility timeout (whole seconds; kumi extends it while a handler runs).
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = Some(timeout);
        self
    }

    /// Creates nothing: binds to the existing queue (and topic) only.
    pub fn least_privilege(mut self) -> Self {
        self.least_privilege = true;
        self
    }

    /// `maxReceiveCount` of the SQS redrive policy (default: the route's attempts + the URL's
    /// `max_receive_margin`).
    pub fn max_receive_count(mut self, n: u32) -> Self {
        self.max_receive_count = Some(n);
        self
    }

    /// No SQS dead-letter queue / redrive policy (kumi's own dead-lettering still applies).
    pub fn without_sqs_dead_letter_queue(mut self) -> Self {
        self.no_sqs_dlq = true;
        self
    }
}

/// True when an SDK error means the endpoint was not reached (as opposed to an answer).
pub(crate) fn unreachable<E, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_))
}

/// A kumi error for a failed AWS call, with the SDK's error context in the text.
pub(crate) fn aws_error<E>(kind: ErrorKind, what: String, e: E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&e).to_string();
    Error::new(kind, format!("{what}: {detail}")).with_source(e)
}

/// The AWS clients and what kumi learned about topics.
pub(crate) struct Topology {
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) url: SnsSqsUrl,
    region: String,
    topics: Mutex<HashMap<String, String>>,
}

/// A queue ready to receive from.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub(crate) url: String,
    pub(crate) arn: Option<String>,
    pub(crate) name: String,
}

impl Topology {
    pub(crate) fn new(
        sns: aws_sdk_sns::Client,
        sqs: aws_sdk_sqs::Client,
        url: SnsSqsUrl,
        region: String,
    ) -> Self {
        Self {
            sns,
            sqs,
            url,
            region,
            topics: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, name: &str) -> Option<String> {
        self.topics.lock().ok().and_then(|m| m.get(name).cloned())
    }

    fn remember(&self, name: &str, arn: &str) {
        if let Ok(mut m) = self.topics.lock() {
            m.insert(name.to_owned(), arn.to_owned());
        }
    }

    /// The ARN of topic `name`: cached, else built (least privilege), else `CreateTopic`.
    pub(crate) async fn topic_arn(&self, name: &str, least_privilege: bool) -> Result<String> {
        if let Some(arn) = self.cached(name) {
            return Ok(arn);
        }
        if least_privilege || self.url.least_privilege {
            let account = self.url.account_id.as_deref().ok_or_else(|| {
                Error::config(format!(
                    "SNS topic '{name}': least-privilege mode creates no topics, so kumi needs the account id to build its ARN; add account_id=<id> to the bus URL {} or give the route a topic_arn",
                    self.url.redacted
                ))
            })?;
            let arn = format!(
                "arn:{}:sns:{}:{account}:{name}",
                self.url.partition, self.region
            );
            self.remember(name, &arn);
            return Ok(arn);
        }
        let mut req = self.sns.create_topic().name(name);
        if name.ends_with(naming::FIFO_SUFFIX) {
            req = req.attributes("FifoTopic", "true");
        }
        let out = req.send().await.map_err(|e| {
            let kind = if unreachable(&e) {
                ErrorKind::Connect
            } else {
                ErrorKind::Publish
            };
            aws_error(
                kind,
                format!("cannot create SNS topic '{name}' on {}", self.url.redacted),
                e,
            )
        })?;
        let arn = out.topic_arn().unwrap_or_default().to_owned();
        if arn.is_empty() {
            return Err(Error::new(
                ErrorKind::Publish,
                format!("CreateTopic '{name}' returned no ARN"),
            ));
        }
        self.remember(name, &arn);
        Ok(arn)
    }

    /// Forgets a cached ARN (after a publish to it failed).
    pub(crate) fn forget(&self, name: &str) {
        if let Ok(mut m) = self.topics.lock() {
            m.remove(name);
        }
    }

    async fn create_queue(&self, name: &str) -> Result<String> {
        naming::check_queue_name(name).map_err(Error::config)?;
        let mut req = self.sqs.create_queue().queue_name(name);
        if name.ends_with(naming::FIFO_SUFFIX) {
            req = req.attributes(QueueAttributeName::FifoQueue, "true");
        }
        match req.send().await {
            Ok(out) => Ok(out.queue_url().unwrap_or_default().to_owned()),
            Err(e) if unreachable(&e) => Err(aws_error(
                ErrorKind::Connect,
                format!("cannot reach SQS at {}", self.url.redacted),
                e,
            )),
            // Exists with other attributes: use it as it is (attributes are set next).
            Err(e) => self.get_queue_url(name).await.map_err(|_| {
                aws_error(
                    ErrorKind::Config,
                    format!("cannot create SQS queue '{name}'"),
                    e,
                )
            }),
        }
    }

    pub(crate) async fn get_queue_url(&self, name: &str) -> Result<String> {
        let out = self
            .sqs
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    ErrorKind::Config,
                    format!("SQS queue '{name}' not found on {}", self.url.redacted),
                    e,
                )
            })?;
        Ok(out.queue_url().unwrap_or_default().to_owned())
    }

    async fn queue_arn(&self, queue_url: &str) -> Result<String> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    ErrorKind::Config,
                    format!("cannot read the ARN of SQS queue {queue_url}"),
                    e,
                )
            })?;
        out.attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("SQS queue {queue_url} has no QueueArn"),
                )
            })
    }

    async fn set_queue_attributes(
        &self,
        queue_url: &str,
        attributes: Vec<(QueueAttributeName, String)>,
    ) -> Result<()> {
        let mut req = self.sqs.set_queue_attributes().queue_url(queue_url);
        for (k, v) in attributes {
            req = req.attributes(k, v);
        }
        req.send().await.map_err(|e| {
            aws_error(
                ErrorKind::Config,
                format!("cannot set attributes of SQS queue {queue_url}"),
                e,
            )
        })?;
        Ok(())
    }

    /// Creates (or updates) the queue `name` with its visibility timeout, its SQS dead-letter
    /// queue (when `max_receive_count` is given) and a policy letting `topic_arn` send to it.
    pub(crate) async fn ensure_queue(
        &self,
        name: &str,
        visibility: Duration,
        max_receive_count: Option<u32>,
        topic_arn: &str,
    ) -> Result<Queue> {
        let url = self.create_queue(name).await?;
        let arn = self.queue_arn(&url).await?;
        let mut attributes = vec![
            (
                QueueAttributeName::VisibilityTimeout,
                visibility.as_secs().to_string(),
            ),
            (QueueAttributeName::Policy, queue_policy(&arn, topic_arn)),
        ];
        if let Some(max) = max_receive_count {
            let dlq_name = naming::dlq_name(name);
            let dlq_url = self.create_queue(&dlq_name).await?;
            self.set_queue_attributes(
                &dlq_url,
                vec![(
                    QueueAttributeName::MessageRetentionPeriod,
                    "1209600".to_owned(),
                )],
            )
            .await?;
            let dlq_arn = self.queue_arn(&dlq_url).await?;
            attributes.push((
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({
                    "deadLetterTargetArn": dlq_arn,
                    "maxReceiveCount": max.to_string(),
                })
                .to_string(),
            ));
        }
        self.set_queue_attributes(&url, attributes).await?;
        Ok(Queue {
            url,
            arn: Some(arn),
            name: name.to_owned(),
        })
    }

    /// Subscribes the queue to the topic and sets the subscription's attributes.
    pub(crate) async fn subscribe(
        &self,
        topic_arn: &str,
        queue_arn: &str,
        opts: &SqsRoute,
    ) -> Result<String> {
        let out = self
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    ErrorKind::Config,
                    format!("cannot subscribe {queue_arn} to {topic_arn}"),
                    e,
                )
            })?;
        let sub_arn = out.subscription_arn().unwrap_or_default().to_owned();
        let mut attributes = vec![(
            "RawMessageDelivery",
            if opts.raw_delivery { "true" } else { "false" }.to_owned(),
        )];
        if let Some(policy) = &opts.filter_policy {
            serde_json::from_str::<serde_json::Value>(policy).map_err(|e| {
                Error::config(format!(
                    "filter policy of the route on {topic_arn} is not JSON: {e}"
                ))
            })?;
            attributes.push(("FilterPolicy", policy.clone()));
            let scope = match opts.filter_scope {
                Some(FilterScope::MessageBody) => "MessageBody",
                _ => "MessageAttributes",
            };
            attributes.push(("FilterPolicyScope", scope.to_owned()));
        }
        for (name, value) in attributes {
            self.sns
                .set_subscription_attributes()
                .subscription_arn(&sub_arn)
                .attribute_name(name)
                .attribute_value(value)
                .send()
                .await
                .map_err(|e| {
                    aws_error(
                        ErrorKind::Config,
                        format!("cannot set {name} on subscription {sub_arn}"),
                        e,
                    )
                })?;
        }
        Ok(sub_arn)
    }

    /// Removes a broadcast route's subscription and queue (best effort).
    pub(crate) async fn remove(&self, subscription_arn: &str, queue_url: &str) {
        if let Err(e) = self
            .sns
            .unsubscribe()
            .subscription_arn(subscription_arn)
            .send()
            .await
        {
            tracing::warn!(subscription = %subscription_arn, "sns: cannot unsubscribe: {}", DisplayErrorContext(&e));
        }
        if let Err(e) = self.sqs.delete_queue().queue_url(queue_url).send().await {
            tracing::warn!(queue = %queue_url, "sqs: cannot delete broadcast queue: {}", aws_sdk_sqs::error::DisplayErrorContext(&e));
        }
    }
}

/// A route's queue, ready to receive from.
pub(crate) struct Provisioned {
    pub(crate) queue: Queue,
    /// Where it listens, for the banner.
    pub(crate) listens: String,
    /// The queue's visibility timeout.
    pub(crate) visibility: Duration,
    /// A broadcast route's subscription and queue, to remove on shutdown.
    pub(crate) ephemeral: Option<(String, String)>,
}

/// Finds or creates a route's topic, queue (with its SQS dead-letter queue and policy) and
/// subscription, as described in the [module docs](self); in least-privilege mode only looks the
/// queue up.
pub(crate) async fn provision(topology: &Topology, sub: &Subscription) -> Result<Provisioned> {
    let url = &topology.url;
    kumi_core::bus::validate_topic(&sub.topic)?;
    let opts = sub.option::<SqsRoute>().cloned().unwrap_or_default();
    let fifo = url.fifo || opts.fifo;
    let least = url.least_privilege || opts.least_privilege || opts.queue_url.is_some();
    let visibility = opts.visibility_timeout.unwrap_or(url.visibility_timeout);
    let topic_name = naming::topic_name(&url.topic_prefix, &sub.topic, fifo);
    let queue_name = match (&opts.queue_name, &sub.sharing) {
        (Some(name), _) => {
            let mut n = format!("{}{name}", url.queue_prefix);
            if fifo && !n.ends_with(naming::FIFO_SUFFIX) {
                n.push_str(naming::FIFO_SUFFIX);
            }
            n
        }
        (None, Sharing::Group(_))
            if opts.tomodachi_queue_name
                || (url.tomodachi_queue_names && !sub.explicit_sharing) =>
        {
            naming::tomodachi_queue_name(&url.queue_prefix, &sub.topic, fifo)
        }
        (None, Sharing::Group(g)) => {
            naming::group_queue_name(&url.queue_prefix, g, &sub.topic, fifo)
        }
        (None, Sharing::Broadcast) => naming::broadcast_queue_name(
            &url.queue_prefix,
            &sub.service.name,
            &sub.name,
            &sub.topic,
            &sub.service.instance_id,
            fifo,
        ),
    };
    let mut ephemeral = None;
    let (queue, listens) = if least {
        let queue_url = match &opts.queue_url {
            Some(u) => u.clone(),
            None => topology.get_queue_url(&queue_name).await.map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "route '{}' (least-privilege) needs the existing SQS queue '{queue_name}' subscribed to SNS topic '{topic_name}': {e}",
                        sub.route
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
        let dead_topic =
            kumi_core::settlement::dead_letter_topic(sub.dead_letter_topic.as_deref(), &sub.topic);
        let dlq_name =
            naming::group_queue_name(&url.queue_prefix, &sub.service.name, &dead_topic, fifo);
        if topology.get_queue_url(&dlq_name).await.is_err() {
            tracing::warn!(
                route = %sub.route,
                dead_letter_topic = %dead_topic,
                "sqs: least-privilege: no SQS queue {dlq_name} keeps this route's dead letters; unless another subscriber of the SNS topic {} does, they are lost (create the queue and subscribe it to the topic)",
                naming::topic_name(&url.topic_prefix, &dead_topic, fifo)
            );
        }
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
            None => topology.topic_arn(&topic_name, false).await?,
        };
        let max_receive = if opts.no_sqs_dlq || url.max_receive_margin == 0 {
            None
        } else {
            Some(
                opts.max_receive_count
                    .unwrap_or_else(|| sub.max_attempts.saturating_add(url.max_receive_margin)),
            )
        };
        let queue = topology
            .ensure_queue(&queue_name, visibility, max_receive, &topic_arn)
            .await?;
        let queue_arn = queue.arn.clone().unwrap_or_default();
        let sub_arn = topology.subscribe(&topic_arn, &queue_arn, &opts).await?;
        if sub.sharing == Sharing::Broadcast {
            ephemeral = Some((sub_arn, queue.url.clone()));
        }
        let dead_letters = keep_dead_letters(topology, sub, fifo, visibility).await?;
        let listens = format!(
            "SQS queue {} subscribed to SNS topic {topic_name}{}; dead letters kept in SQS queue {dead_letters}",
            queue.name,
            if sub.sharing == Sharing::Broadcast {
                " (this instance only)"
            } else {
                ""
            }
        );
        (queue, listens)
    };
    Ok(Provisioned {
        queue,
        listens,
        visibility,
        ephemeral,
    })
}

/// Creates the SNS dead-letter topic of `sub` and the service's SQS queue subscribed to it (see the
/// [module docs](self), step 5); returns the queue's name.
async fn keep_dead_letters(
    topology: &Topology,
    sub: &Subscription,
    fifo: bool,
    visibility: Duration,
) -> Result<String> {
    let url = &topology.url;
    let dead_topic =
        kumi_core::settlement::dead_letter_topic(sub.dead_letter_topic.as_deref(), &sub.topic);
    kumi_core::bus::validate_topic(&dead_topic)?;
    let topic_name = naming::topic_name(&url.topic_prefix, &dead_topic, fifo);
    let topic_arn = topology.topic_arn(&topic_name, false).await?;
    let name = naming::group_queue_name(&url.queue_prefix, &sub.service.name, &dead_topic, fifo);
    let queue = topology
        .ensure_queue(&name, visibility, None, &topic_arn)
        .await?;
    topology
        .set_queue_attributes(
            &queue.url,
            vec![(
                QueueAttributeName::MessageRetentionPeriod,
                "1209600".to_owned(),
            )],
        )
        .await?;
    let queue_arn = queue.arn.clone().unwrap_or_default();
    topology
        .subscribe(&topic_arn, &queue_arn, &SqsRoute::default())
        .await?;
    Ok(name)
}

/// The queue policy: `sqs:SendMessage` from the topic only.
pub(crate) fn queue_policy(queue_arn: &str, topic_arn: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "kumi-sns-to-sqs",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }],
    })
    .to_string()
}
