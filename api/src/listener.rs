//! The api's TCP listener with a cap on open connections.
//!
//! Every open connection costs the api buffers and, while it has a request, a task in
//! the runtime's run queue. A flood of clients that each open a connection would
//! otherwise make the api hold thousands of them: memory grows with the flood, and a
//! request waits behind every other connection's before it is even read, so refusals
//! that take microseconds are answered late. With the cap, the connection beyond it
//! waits in the kernel's listen backlog until one closes; the connections the api holds
//! are served at full speed, and the intake's in-flight limit refuses what they bring
//! beyond capacity with 503 at once.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prometheus::IntGauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A [`TcpListener`] that holds at most `max` connections open at a time (0 = no cap).
pub struct LimitedListener {
    inner: TcpListener,
    permits: Option<Arc<Semaphore>>,
    open: IntGauge,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, max: usize, open: IntGauge) -> Self {
        Self {
            inner,
            permits: (max > 0).then(|| Arc::new(Semaphore::new(max))),
            open,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The permit is taken before accepting: at the cap, the next client stays in
        // the kernel's backlog rather than in the api.
        let permit = match &self.permits {
            Some(permits) => match permits.clone().acquire_owned().await {
                Ok(permit) => Some(permit),
                // The semaphore is never closed.
                Err(_) => None,
            },
            None => None,
        };
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        self.open.inc();
        let io = CountedStream {
            stream,
            open: self.open.clone(),
            _permit: permit,
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; closing it frees its place under the cap.
pub struct CountedStream {
    stream: TcpStream,
    open: IntGauge,
    _permit: Option<OwnedSemaphorePermit>,
}

impl CountedStream {
    /// Responses go out as soon as they are written (no Nagle delay).
    pub fn set_nodelay(&self) {
        if let Err(e) = self.stream.set_nodelay(true) {
            tracing::debug!(event = "set_nodelay_failed", error = %e);
        }
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use std::time::Duration;

    async fn listener(max: usize) -> (LimitedListener, SocketAddr, IntGauge) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let open = IntGauge::new("open", "open").unwrap();
        (LimitedListener::new(tcp, max, open.clone()), addr, open)
    }

    #[tokio::test]
    async fn a_connection_beyond_the_cap_waits_until_one_closes() {
        let (mut listener, addr, open) = listener(2).await;
        let _clients: Vec<TcpStream> =
            futures::future::join_all((0..3).map(|_| TcpStream::connect(addr)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        let (first, _) = listener.accept().await;
        let (_second, _) = listener.accept().await;
        assert_eq!(open.get(), 2);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), listener.accept())
                .await
                .is_err(),
            "the third connection is not taken while two are open"
        );
        drop(first);
        assert_eq!(open.get(), 1);
        let third = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        assert!(third.is_ok(), "a closed connection frees its place");
        assert_eq!(open.get(), 2);
    }

    #[tokio::test]
    async fn without_a_cap_every_connection_is_taken() {
        let (mut listener, addr, open) = listener(0).await;
        let _clients: Vec<TcpStream> =
            futures::future::join_all((0..5).map(|_| TcpStream::connect(addr)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        let mut accepted = Vec::new();
        for _ in 0..5 {
            accepted.push(
                tokio::time::timeout(Duration::from_secs(5), listener.accept())
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(open.get(), 5);
        drop(accepted);
        assert_eq!(open.get(), 0);
    }
}
