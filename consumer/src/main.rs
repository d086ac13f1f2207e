//! The `consumer` binary.

use clap::Parser;
use registrar_consumer::config::ConsumerConfig;
use registrar_consumer::{Consumer, StartError};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "consumer", version, about = "Registrar Kafka consumer")]
struct Cli {
    #[command(flatten)]
    config: ConsumerConfig,
}

fn main() {
    common::config::load_dotenv();
    let cli = Cli::parse();
    common::config::run_main(run(cli.config))
}

async fn run(config: ConsumerConfig) -> i32 {
    let _telemetry = match common::ops::telemetry::init(&config.log, "registrar-consumer") {
        Ok(telemetry) => telemetry,
        Err(e) => e.exit(),
    };
    let shutdown = CancellationToken::new();
    let consumer = match Consumer::build(&config, shutdown.clone()) {
        Ok(c) => c,
        Err(StartError::Config(e)) => e.exit(),
        Err(e) => {
            tracing::error!(event = "startup_failed", error = %e);
            return 1;
        }
    };
    let addr = config.service.address(config.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(event = "bind_failed", %addr, error = %e);
            return 1;
        }
    };
    tracing::info!(event = "consumer_started", %addr, topic = %config.kafka.topic, group = %config.group_id, hash_threads = config.hash_threads());
    tokio::spawn(async move {
        common::ops::shutdown::signal().await;
        shutdown.cancel();
    });
    match consumer.run(listener).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(event = "consumer_failed", error = format!("{e:#}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
