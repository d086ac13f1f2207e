//! The `api` binary: `api [serve]`, `api migrate`, `api keygen`.

use clap::{Parser, Subcommand};
use common::config::{ConfigError, LogConfig, PostgresConfig};
use registrar_api::config::ApiConfig;
use registrar_api::startup::{Application, StartError};

#[derive(Parser)]
#[command(name = "api", version, about = "Registrar HTTP api")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP api (the default).
    Serve(Box<ApiConfig>),
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        postgres: PostgresConfig,
        #[command(flatten)]
        log: LogConfig,
    },
    /// Print a new sealing key pair as `.env` lines.
    Keygen {
        /// Key id to print; defaults to one derived from today's date.
        #[arg(long)]
        key_id: Option<String>,
    },
}

fn main() {
    common::config::load_dotenv();
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 1 {
        args.push("serve".into());
    }
    let cli = Cli::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(run(cli));
    std::process::exit(code);
}

async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Keygen { key_id } => {
            keygen(key_id);
            0
        }
        Command::Migrate { postgres, log } => {
            init_logs(&log);
            let pool = common::db::pool(&postgres).unwrap_or_else(|e| e.exit());
            match common::db::migrate(&pool).await {
                Ok(applied) => {
                    tracing::info!(
                        event = "migrations_applied",
                        count = applied.len(),
                        ?applied
                    );
                    0
                }
                Err(e) => {
                    tracing::error!(event = "migrations_failed", error = format!("{e:#}"));
                    1
                }
            }
        }
        Command::Serve(config) => serve(*config).await,
    }
}

fn init_logs(log: &LogConfig) {
    if let Err(e) = common::telemetry::init(log) {
        e.exit()
    }
}

async fn serve(config: ApiConfig) -> i32 {
    init_logs(&config.log);
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(StartError::Config(e)) => e.exit(),
        Err(e) => {
            tracing::error!(event = "startup_failed", error = %e);
            return 1;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(event = "bind_failed", %addr, error = %e);
            return 1;
        }
    };
    tracing::info!(event = "api_listening", %addr);
    match app.serve(listener, common::shutdown::signal()).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(event = "api_failed", error = format!("{e:#}"));
            1
        }
    }
}

fn keygen(key_id: Option<String>) {
    let key_id = key_id.unwrap_or_else(|| {
        format!(
            "k{}-{}",
            chrono::Utc::now().format("%Y%m%d"),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        )
    });
    if let Err(e) =
        common::seal::SealingKey::from_base64(&key_id, &common::seal::generate_key_pair().1)
    {
        ConfigError::new("--key-id", e).exit();
    }
    let (private, public) = common::seal::generate_key_pair();
    println!(
        "# Registrar password-sealing key pair (HPKE X25519), generated {}",
        chrono::Utc::now().to_rfc3339()
    );
    println!("# api:");
    println!("SEAL_KEY_ID={key_id}");
    println!("SEAL_PUBLIC_KEY={public}");
    println!("# consumer (append older pairs after a comma while rotating):");
    println!("SEAL_PRIVATE_KEYS={key_id}:{}", private.as_str());
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
