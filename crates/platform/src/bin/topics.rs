//! `just topics`: the topic and subject setup on demand (what every service also does at
//! startup): creates the project's topics that are missing and reports, for each declared
//! topic, whether it was created, matches its declaration, or has drifted from it; then puts
//! every project subject at the project's compatibility level and registers this version's
//! schemas, refused if incompatible with what the registry holds.

use std::process::ExitCode;

use clap::Parser;
use platform::CommonConfig;
use platform::kafka::topics::{self, TopicStatus};
use platform::registry::Registry;
use platform::topic::{COMPATIBILITY, Topics};

#[derive(Debug, Parser)]
#[command(name = "topics", about = "Create or verify the project's Kafka topics and registry subjects")]
struct Config {
    #[command(flatten)]
    common: CommonConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("topics", |config: Config, _shutdown| async move {
        let config = config.common;
        platform::kafka::check_connection(&config.kafka).await?;
        for (topic, status) in topics::ensure(&config.kafka, &config.topics.catalog()).await? {
            match status {
                TopicStatus::Created => println!("{topic}: created"),
                TopicStatus::Verified => println!("{topic}: ok"),
                TopicStatus::Drifted(diffs) => println!("{topic}: DRIFT: {}", diffs.join("; ")),
            }
        }
        let registry = Registry::new(&config.registry, config.kafka.startup_timeout());
        let bound = Topics::bind(&config.topics, &registry).await?;
        let level = COMPATIBILITY.as_str();
        for (topic, id) in bound.schema_ids() {
            println!("{topic}-value: {level}, schema id {id}");
        }
        Ok(())
    })
    .await
}
