//! `just topics`: creates the project's topics that are missing and reports, for each declared
//! topic, whether it was created, matches its declaration, or has drifted from it.

use std::process::ExitCode;

use clap::Parser;
use platform::kafka::topics::{self, TopicStatus, TopicsConfig};
use platform::{KafkaConfig, TelemetryConfig};

#[derive(Debug, Parser)]
#[command(name = "topics", about = "Create or verify the project's Kafka topics")]
struct Config {
    #[command(flatten)]
    kafka: KafkaConfig,
    #[command(flatten)]
    topics: TopicsConfig,
    #[command(flatten)]
    telemetry: TelemetryConfig,
}

impl platform::service::ServiceConfig for Config {
    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("topics", |config: Config, _shutdown| async move {
        platform::kafka::check_connection(&config.kafka).await?;
        for (topic, status) in topics::ensure(&config.kafka, &config.topics.catalog()).await? {
            match status {
                TopicStatus::Created => println!("{topic}: created"),
                TopicStatus::Verified => println!("{topic}: ok"),
                TopicStatus::Drifted(diffs) => println!("{topic}: DRIFT: {}", diffs.join("; ")),
            }
        }
        Ok(())
    })
    .await
}
