//! `registrar-bench`: a load harness for a running api + consumer (and an in-process
//! consumer for `drain`). Each benchmark prints a Markdown table and writes it, with an
//! SVG latency plot, under `target/bench/`. `make bench` runs them all.

mod accounts;
mod connections;
mod console;
mod cpu;
mod drain;
mod e2e;
mod hash;
mod import;
mod intake;
mod load;
mod oidc;
mod passkeys;
// The software passkey authenticator the integration tests use (ES256, WebAuthn JSON).
#[path = "../../tests/src/authenticator.rs"]
mod authenticator;
mod poll;
mod report;
mod webhooks;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use report::{ms, new_histogram, Report};
use secrecy::SecretString;
use serde_json::json;

// Every benchmark module sees the harness through `use super::*`.
use accounts::*;
use connections::*;
use console::*;
use drain::*;
use e2e::*;
use hash::*;
use import::*;
use intake::*;
use load::*;
use oidc::*;
use passkeys::*;
use poll::*;
use webhooks::*;

#[derive(Parser)]
#[command(name = "registrar-bench", about = "Registrar load harness")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// The running api.
    #[arg(
        long,
        env = "BENCH_API",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    api: String,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/registrar",
        global = true
    )]
    database_url: String,
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    redis_url: String,
    #[arg(
        long,
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    brokers: String,
    /// Named in the reports: which storage the broker runs on.
    #[arg(
        long,
        env = "BENCH_BROKER_STORAGE",
        default_value = "Apache Kafka, one KRaft node",
        global = true
    )]
    broker_storage: String,
    /// The api's process id, for its CPU time and RSS (`make bench` passes it).
    #[arg(long, env = "BENCH_API_PID", global = true)]
    api_pid: Option<i32>,
    /// The consumer's process id (CPU time, RSS; stopped and continued by `intake`).
    #[arg(long, env = "BENCH_CONSUMER_PID", global = true)]
    consumer_pid: Option<i32>,
}

impl CommonArgs {
    fn processes(&self) -> cpu::Processes {
        cpu::Processes {
            api: self.api_pid,
            consumer: self.consumer_pid,
        }
    }
}

#[derive(Subcommand)]
enum Bench {
    /// POST registrations: closed loop with N clients, or open loop at --rate.
    Intake(LoadArgs),
    /// Intake with the consumer stopped, then with it hashing the backlog on the same cores.
    IntakeShared(LoadArgs),
    /// GET /api/v1/users/{email} for completed and pending emails.
    Poll(LoadArgs),
    /// Put N registrations on a fresh topic, then start a consumer and time the drain.
    Drain(DrainArgs),
    /// Registration to `completed` on the poll endpoint, at a fixed rate.
    E2e(E2eArgs),
    /// Raw argon2id rate of this machine with the configured parameters.
    Hash(HashArgs),
    /// POST /api/v1/auth/login with correct passwords (argon2 verify on the api's pool).
    Login(LoadArgs),
    /// GET /api/v1/auth/me with a valid access token (JWT verify + revocation check + read).
    Me(LoadArgs),
    /// Hold N open keep-alive connections to the api and report its resident memory.
    Connections(ConnectionsArgs),
    /// Bulk import of N pre-hashed users with `api import` (the api's settings), timed
    /// until the running consumer persisted them all.
    Import(ImportArgs),
    /// Sign-ups at a fixed rate, alone and during a bulk import over the api: intake
    /// and completion latency (is the import starving them?).
    ImportIntake(ImportIntakeArgs),
    /// POST /oauth2/token, grant_type=authorization_code (PKCE), one fresh code per request.
    TokenCode(LoadArgs),
    /// POST /oauth2/token, grant_type=client_credentials.
    TokenClientCredentials(LoadArgs),
    /// Webhook deliveries to a local receiver: 202 → `user.registered` webhook latency,
    /// and deliveries/s with the consumer's CPU per delivery.
    Webhooks(WebhookArgs),
    /// Passkey-first sign-ups to `completed` at a fixed rate (nothing to hash).
    PasskeySignUp(E2eArgs),
    /// POST /api/v1/auth/passkey/login with a fresh assertion per request.
    PasskeySignIn(LoadArgs),
    /// GET /api/v1/users as an admin over --users accounts (seeded once into
    /// PostgreSQL): first page, filters, prefix search, pages walked by cursor.
    UsersList(UsersListArgs),
    /// Everything, with defaults that finish in a few minutes on 2 cores.
    All,
}

#[derive(Args, Clone)]
struct ImportIntakeArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Sign-ups per second (open loop).
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// How long sign-ups run, alone and during the import.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

#[derive(Args, Clone)]
struct WebhookArgs {
    /// Registrations per second for the latency phase (open loop).
    #[arg(long, default_value_t = 20)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Deliveries held, then sent at once, for the throughput phase.
    #[arg(long, default_value_t = 5000)]
    deliveries: usize,
}

#[derive(Args, Clone)]
struct ImportArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
}

#[derive(Args, Clone)]
struct UsersListArgs {
    /// Accounts the database holds (seeded as `bench.list.<n>@example.com` up to this).
    #[arg(long, default_value_t = 1_000_000)]
    users: i64,
    /// Requests per case.
    #[arg(long, default_value_t = 50)]
    samples: u32,
    /// Pages walked by cursor.
    #[arg(long, default_value_t = 1_000)]
    pages: u32,
}

#[derive(Args, Clone)]
struct LoadArgs {
    /// Clients of a closed loop; connections of the open-loop poll generator.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per second (open loop); 0 = closed loop with `concurrency` clients.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[derive(Args, Clone)]
struct DrainArgs {
    #[arg(long, default_value_t = 600)]
    count: usize,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
}

#[derive(Args, Clone)]
struct E2eArgs {
    #[arg(long, default_value_t = 20)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[derive(Args, Clone)]
struct ConnectionsArgs {
    #[arg(long, default_value_t = 1000)]
    count: usize,
}

#[derive(Args, Clone)]
struct HashArgs {
    #[command(flatten)]
    argon2: common::domain::password::Argon2Config,
    /// 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, default_value_t = 64)]
    count: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let c = cli.common;
    match cli.bench {
        Bench::Intake(a) => intake(&c, a).await?.0.publish()?,
        Bench::IntakeShared(a) => {
            for r in intake_shared(&c, a).await?.0 {
                r.publish()?;
            }
        }
        Bench::Poll(a) => poll(&c, a).await?.publish()?,
        Bench::Drain(a) => drain(&c, a, None).await?.0.publish()?,
        Bench::E2e(a) => e2e(&c, a).await?.publish()?,
        Bench::Hash(a) => hash(&a)?.0.publish()?,
        Bench::Connections(a) => connections(&c, a).await?.publish()?,
        Bench::Login(a) => login(&c, a).await?.publish()?,
        Bench::Me(a) => me(&c, a).await?.publish()?,
        Bench::Import(a) => import(&c, a).await?.publish()?,
        Bench::ImportIntake(a) => import_intake(&c, a).await?.publish()?,
        Bench::TokenCode(a) => token_code(&c, a).await?.publish()?,
        Bench::TokenClientCredentials(a) => token_client_credentials(&c, a).await?.publish()?,
        Bench::Webhooks(a) => webhooks(&c, a).await?.publish()?,
        Bench::PasskeySignUp(a) => passkey_sign_ups(&c, a).await?.publish()?,
        Bench::PasskeySignIn(a) => passkey_sign_ins(&c, a).await?.publish()?,
        Bench::UsersList(a) => users_list(&c, a).await?.publish()?,
        Bench::All => {
            let (h, hash_rate) = hash(&HashArgs {
                argon2: Default::default(),
                threads: 0,
                count: 64,
            })?;
            h.publish()?;
            let (d, d_rate) = drain(
                &c,
                DrainArgs {
                    count: 600,
                    partitions: 4,
                },
                Some(hash_rate),
            )
            .await?;
            d.publish()?;
            // e2e and poll before intake: intake leaves a backlog the consumer works
            // through for minutes, which would be measured as e2e latency.
            let e2e_rate = (d_rate / 2.0).max(1.0) as u64;
            e2e(
                &c,
                E2eArgs {
                    rate: e2e_rate,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            poll(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 0,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            poll(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 5000,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            poll(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 20_000,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            login(
                &c,
                LoadArgs {
                    concurrency: 16,
                    rate: 0,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            me(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 0,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            let token_load = LoadArgs {
                concurrency: 32,
                rate: 0,
                seconds: 10,
            };
            token_client_credentials(&c, token_load.clone())
                .await?
                .publish()?;
            token_code(&c, token_load).await?.publish()?;
            webhooks(
                &c,
                WebhookArgs {
                    rate: (d_rate / 2.0).max(1.0) as u64,
                    seconds: 10,
                    deliveries: 5000,
                },
            )
            .await?
            .publish()?;
            passkey_sign_ups(
                &c,
                E2eArgs {
                    rate: 100,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            passkey_sign_ins(
                &c,
                LoadArgs {
                    concurrency: 32,
                    rate: 0,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            let (reports, capacity) = intake_shared(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 0,
                    seconds: 10,
                },
            )
            .await?;
            for r in reports {
                r.publish()?;
            }
            intake(
                &c,
                LoadArgs {
                    concurrency: 0,
                    rate: 300,
                    seconds: 10,
                },
            )
            .await?
            .0
            .publish()?;
            connections(&c, ConnectionsArgs { count: 1000 })
                .await?
                .publish()?;
            // Twice what the api accepted alone: the producer queue fills and the rest
            // must be refused at once.
            let (mut overload, _) = intake(
                &c,
                LoadArgs {
                    concurrency: 0,
                    rate: (2.0 * capacity).max(3000.0) as u64,
                    seconds: 5,
                },
            )
            .await?;
            overload.name = "intake-overload";
            overload.publish()?;
        }
    }
    Ok(())
}
