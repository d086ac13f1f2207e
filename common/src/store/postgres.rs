//! PostgreSQL: the connection pool and the schema migrations (refinery, embedded from
//! `migrations/`).

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{ConfigError, PostgresConfig};

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Builds a lazy pool: nothing connects until the first query, so a binary starts (and
/// reports itself unready) while PostgreSQL is down. TLS follows the URL's `sslmode`
/// and `sslrootcert` (see `store::tls`).
pub fn pool(config: &PostgresConfig) -> Result<Pool, ConfigError> {
    let (mut pg, tls) = config.parsed()?;
    let connector = MakeRustlsConnect::new(
        tls.client_config()
            .map_err(|e| ConfigError::new("DATABASE_URL", format!("sslrootcert: {e}")))?,
    );
    pg.connect_timeout(config.timeout());
    pg.application_name("registrar");
    let manager = Manager::from_config(
        pg,
        connector,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.timeout()))
        .create_timeout(Some(config.timeout()))
        .recycle_timeout(Some(config.timeout()))
        .build()
        .map_err(|e| ConfigError::new("DATABASE_POOL_SIZE", e))
}

/// An arbitrary constant: the advisory lock that serialises migrations when several
/// replicas start at once.
const MIGRATION_LOCK: i64 = 0x5245_4749_5354_5241;

/// Applies pending migrations; returns the names of those applied.
pub async fn migrate(pool: &Pool) -> anyhow::Result<Vec<String>> {
    let mut client = pool.get().await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = embedded::migrations::runner()
        .run_async(&mut **client)
        .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = result?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// `SELECT 1` bounded by `timeout`: the readiness check.
pub async fn ping(pool: &Pool, timeout: Duration) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, async {
        let client = pool.get().await?;
        client.simple_query("SELECT 1").await?;
        anyhow::Ok(())
    })
    .await
    .map_err(|_| anyhow::anyhow!("PostgreSQL did not answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_in_the_migrations_folder_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_owned())
            .collect();
        let mut embedded: Vec<String> = super::embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| format!("V{}__{}", m.version(), m.name()))
            .collect();
        on_disk.sort();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "a migration added without rebuilding the crate that embeds them"
        );
    }
}
