//! The project's topics bound as a set: what every service gets at startup.

use std::sync::Arc;

use super::{Topic, WriterSchemas};
use crate::kafka::topics::TopicsConfig;
use crate::registry::{Registry, RegistryError};

/// Every project topic, bound to its record type and registered schema.
#[derive(Debug, Clone)]
pub struct Topics {
    pub user_commands: Topic<contract::commands::UserCommand>,
    pub user_events: Topic<contract::events::UserEvent>,
    pub user_state: Topic<contract::state::UserState>,
    pub user_replies: Topic<contract::replies::UserCommandReply>,
    pub import_requests: Topic<contract::imports::ImportRequested>,
    pub import_status: Topic<contract::imports::ImportStatus>,
    pub export_requests: Topic<contract::exports::ExportRequested>,
    pub export_status: Topic<contract::exports::ExportStatus>,
    /// Raw copies of records that could never be processed: no schema of their own.
    pub dead_letters: String,
}

impl Topics {
    /// The subject setup: every project subject at [`COMPATIBILITY`], this version's schema
    /// registered under each (refused if it breaks compatibility with what is there).
    pub async fn bind(config: &TopicsConfig, registry: &Registry) -> Result<Self, RegistryError> {
        let writers = Arc::new(WriterSchemas::new(registry.clone()));
        Ok(Self {
            user_commands: Topic::bind_sharing(&config.user_commands, &writers).await?,
            user_events: Topic::bind_sharing(&config.user_events, &writers).await?,
            user_state: Topic::bind_sharing(&config.user_state, &writers).await?,
            user_replies: Topic::bind_sharing(&config.user_replies, &writers).await?,
            import_requests: Topic::bind_sharing(&config.import_requests, &writers).await?,
            import_status: Topic::bind_sharing(&config.import_status, &writers).await?,
            export_requests: Topic::bind_sharing(&config.export_requests, &writers).await?,
            export_status: Topic::bind_sharing(&config.export_status, &writers).await?,
            dead_letters: config.dead_letters.clone(),
        })
    }

    /// Each topic with the id of this version's schema for it.
    pub fn schema_ids(&self) -> [(&str, u32); 8] {
        [
            (self.user_commands.name(), self.user_commands.schema_id()),
            (self.user_events.name(), self.user_events.schema_id()),
            (self.user_state.name(), self.user_state.schema_id()),
            (self.user_replies.name(), self.user_replies.schema_id()),
            (self.import_requests.name(), self.import_requests.schema_id()),
            (self.import_status.name(), self.import_status.schema_id()),
            (self.export_requests.name(), self.export_requests.schema_id()),
            (self.export_status.name(), self.export_status.schema_id()),
        ]
    }
}
