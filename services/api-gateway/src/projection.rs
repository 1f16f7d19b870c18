//! The gateway's read model: every user event, applied to its own [`UserView`] by a tail of
//! the events topic that starts from the beginning on every start.

use domain::avro::AvroRecord;
use domain::event::EventEnvelope;
use domain::view::UserView;
use domain::wire::Wire;
use platform::avro::{Apply, AvroCodec};
use platform::kafka::Handler;

/// Applies events to `users` (idempotent: a replayed event changes nothing); `id` is our event
/// schema's registry id, whose records take the direct codec.
pub(crate) fn apply_events(users: &UserView, codec: &AvroCodec, id: u32) -> impl Handler + 'static {
    let users = users.clone();
    let apply = move |envelope: EventEnvelope| {
        users.apply(&envelope.event);
        metrics::gauge!("projection_users").set(users.len() as f64);
    };
    Apply::new(codec.clone(), EventEnvelope::parse_value, apply).direct(id, EventEnvelope::read)
}
