//! The shutdown signal both binaries wait for: SIGTERM (Kubernetes) or SIGINT (Ctrl-C).

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(event = "signal_handler_failed", error = %e);
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(event = "signal_handler_failed", error = %e);
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(event = "shutdown_requested", signal = "SIGINT"),
        () = term => tracing::info!(event = "shutdown_requested", signal = "SIGTERM"),
    }
}
