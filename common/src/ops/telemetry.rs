//! Tracing setup: JSON lines by default, human-readable with `LOG_FORMAT=pretty`.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{ConfigError, LogConfig, LogFormat};

pub fn init(config: &LogConfig) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(&config.level).map_err(|e| ConfigError::new("LOG_LEVEL", e))?;
    let builder = fmt().with_env_filter(filter).with_target(true);
    let result = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is not an error.
    let _ = result;
    Ok(())
}
