use bytes::Bytes;

use super::{EncodeContext, Encoded, Envelope};
use crate::error::Result;
use crate::message::Message;

/// No envelope: the payload bytes are the message body.
///
/// Typed payloads are written as compact JSON. The message id travels out of band (headers or the
/// transport's own id field), so bare clients see exactly the JSON they expect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Envelope for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn encode(&self, _cx: &EncodeContext<'_>, payload: &[u8]) -> Result<Encoded> {
        Ok(Encoded {
            body: Bytes::copy_from_slice(payload),
            message_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    fn decode(&self, message: &mut Message) -> Result<()> {
        message.payload = message.body.clone();
        Ok(())
    }
}
