//! The `consumer` binary.

use clap::{Parser, Subcommand};
use common::config::{KafkaConfig, LogConfig};
use common::events::kafka::dlq_headers;
use common::ops::dead_letters as dlq_tool;
use registrar_consumer::config::ConsumerConfig;
use registrar_consumer::{Consumer, StartError};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "consumer", version, about = "Registrar Kafka consumer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume registrations (the default: `consumer` alone, or with options, runs).
    Run(Box<ConsumerConfig>),
    /// The dead letters of `<KAFKA_TOPIC>.dlq`.
    Dlq(Box<DlqArgs>),
    /// Print the consumer's environment variables (default, meaning) as a Markdown
    /// table and exit.
    ConfigReference,
}

#[derive(clap::Args)]
struct DlqArgs {
    #[command(subcommand)]
    action: DlqAction,
    #[command(flatten)]
    kafka: KafkaConfig,
    #[command(flatten)]
    log: LogConfig,
}

#[derive(Subcommand)]
enum DlqAction {
    /// One line per dead letter: position, kind, error, what it is.
    List {
        /// Only this kind (undecodable, invalid, credential).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Every header of the dead letter at `<partition>:<offset>`.
    Show { position: String },
    /// Puts dead letters back on the registration topic (`KAFKA_TOPIC`), key, bytes and
    /// signature unchanged (their registration ids too, so a replay persists a
    /// registration once at most), after checking each as the consumer would.
    Replay {
        /// Replay every dead letter of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Replay these (`<partition>:<offset>`, repeatable).
        #[arg(long = "position")]
        positions: Vec<String>,
        /// Replay every dead letter (needed when neither --kind nor --position is given).
        #[arg(long)]
        all: bool,
        /// The public keys the consumer verifies records with; each dead letter is
        /// checked again before it goes back.
        #[arg(
            long = "record-verifying-keys",
            env = "RECORD_VERIFYING_KEYS",
            hide_env_values = true
        )]
        record_verifying_keys: Option<String>,
        /// Show what would be replayed, replay nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() {
    common::config::load_dotenv();
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `consumer` and `consumer --option …` run, as they always did.
    if args.get(1).is_none_or(|a| {
        a.to_string_lossy().starts_with('-')
            && a != "--help"
            && a != "-h"
            && a != "--version"
            && a != "-V"
    }) {
        args.insert(1, "run".into());
    }
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Run(config) => common::config::run_main(run(*config)),
        Command::Dlq(args) => {
            let DlqArgs { action, kafka, log } = *args;
            common::config::run_main(dlq(action, kafka, log))
        }
        Command::ConfigReference => {
            print!(
                "{}",
                common::config_reference::markdown_for(
                    "consumer",
                    &registrar_consumer::config::settings()
                )
            );
        }
    }
}

async fn dlq(action: DlqAction, kafka: KafkaConfig, log: LogConfig) -> i32 {
    let _telemetry = match common::ops::telemetry::init(&log, "registrar-consumer-dlq") {
        Ok(telemetry) => telemetry,
        Err(e) => e.exit(),
    };
    let result = match action {
        DlqAction::List { kind } => dlq_tool::read_all(&kafka).await.map(|records| {
            let selection = dlq_tool::Selection {
                kind,
                positions: Vec::new(),
            };
            let shown: Vec<_> = records.iter().filter(|r| selection.matches(r)).collect();
            for r in &shown {
                println!(
                    "{:<10} {:<12} {}  error: {}",
                    r.position(),
                    r.kind(),
                    r.summary(),
                    r.header(dlq_headers::ERROR).unwrap_or("")
                );
            }
            println!("{} dead letter(s) in {}", shown.len(), kafka.dlq_topic());
        }),
        DlqAction::Show { position } => dlq_tool::read_all(&kafka).await.and_then(|records| {
            let r = records
                .iter()
                .find(|r| r.position() == position)
                .ok_or_else(|| {
                    anyhow::anyhow!("no dead letter at {position} in {}", kafka.dlq_topic())
                })?;
            println!("position   {}", r.position());
            println!(
                "timestamp  {}",
                r.timestamp_ms.map_or("-".to_owned(), |t| t.to_string())
            );
            println!(
                "key        {}",
                r.key
                    .as_deref()
                    .map_or("-".to_owned(), |k| String::from_utf8_lossy(k).into_owned())
            );
            println!("record     {}", r.summary());
            for (k, v) in &r.headers {
                println!("header     {k}: {v}");
            }
            Ok(())
        }),
        DlqAction::Replay {
            kind,
            positions,
            all,
            dry_run,
            record_verifying_keys,
        } => {
            if kind.is_none() && positions.is_empty() && !all {
                eprintln!("choose what to replay: --kind, --position or --all");
                return 2;
            }
            let Some(keys) = record_verifying_keys else {
                eprintln!("replay checks each record's signature: set RECORD_VERIFYING_KEYS");
                return 2;
            };
            let verifier = match common::events::signature::RecordVerifier::parse(&keys) {
                Ok(v) => v,
                Err(e) => common::config::ConfigError::new("RECORD_VERIFYING_KEYS", e).exit(),
            };
            let selection = dlq_tool::Selection { kind, positions };
            dlq_tool::replay(&kafka, &verifier, &selection, dry_run)
                .await
                .map(|outcome| {
                    for (r, reason) in &outcome.refused {
                        println!(
                            "refused      {:<10} {:<12} {}: {reason}",
                            r.position(),
                            r.kind(),
                            r.summary()
                        );
                    }
                    let records = &outcome.replayed;
                    for r in records {
                        println!(
                            "{} {:<10} {:<12} {}",
                            if dry_run { "would replay" } else { "replayed" },
                            r.position(),
                            r.kind(),
                            r.summary()
                        );
                    }
                    println!(
                        "{} {} dead letter(s) to {}",
                        if dry_run { "would replay" } else { "replayed" },
                        records.len(),
                        kafka.topic
                    );
                })
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
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
