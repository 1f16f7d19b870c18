//! The gateway's read model: every user event, applied to its own [`UserView`] by a tail of
//! the events topic that starts from the beginning on every start.

use domain::event::EventEnvelope;
use domain::view::UserView;

/// Applies each event to `users` (idempotent: a replayed event changes nothing) and keeps the
/// `projection_users` gauge.
pub(crate) fn applying_to(users: &UserView) -> impl Fn(EventEnvelope) + Send + Sync + 'static {
    let (apply, users) = (users.applying(), users.clone());
    move |envelope: EventEnvelope| {
        apply(envelope);
        metrics::gauge!("projection_users").set(users.len() as f64);
    }
}
