//! The gateway's read model: every user event, applied to its own [`UserView`] by a tail of
//! the events topic that starts from the beginning on every start.

use domain::avro::AvroRecord;
use domain::event::EventEnvelope;
use domain::view::UserView;
use platform::avro::AvroCodec;
use platform::kafka::{HandleError, Handler, Incoming};

/// Applies events to the view (idempotent: a replayed event changes nothing).
#[derive(Debug)]
pub(crate) struct ApplyEvents {
    pub(crate) users: UserView,
    pub(crate) codec: AvroCodec,
}

impl Handler for ApplyEvents {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        let envelope =
            EventEnvelope::from_avro(self.codec.decode_message(message).await?).map_err(HandleError::permanent)?;
        self.users.apply(&envelope.event);
        Ok(())
    }
}
