//! The api's TCP listener with a cap on open connections.
//!
//! Every open connection costs the api buffers and, while it has a request, a task in
//! the runtime's run queue. A flood of clients that each open a connection would
//! otherwise make the api hold thousands of them: memory grows with the flood, and a
//! request waits behind every other connection's before it is even read, so refusals
//! that take microseconds are answered late. With the cap, a connection beyond it is
//! answered at once with 503 `OVERLOADED`, `Retry-After: 1` and `Connection: close`
//! (its request head is read first, so the client sees the answer rather than a reset)
//! and closed: the client learns when to come back, and the api holds no state for it.
//! The connections the api holds are served at full speed, and the intake's in-flight
//! limit refuses what they bring beyond capacity with 503 at once too.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a refused connection may take to send its request head.
const REFUSAL_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// Most of a refused connection's request read before the answer.
const REFUSAL_READ_MAX: usize = 16 * 1024;

/// A [`TcpListener`] that holds at most `max` connections open at a time (0 = no cap).
pub struct LimitedListener {
    inner: TcpListener,
    permits: Option<Arc<Semaphore>>,
    open: IntGauge,
    refused: IntCounter,
    refusal: Arc<[u8]>,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, max: usize, open: IntGauge, refused: IntCounter) -> Self {
        Self {
            inner,
            permits: (max > 0).then(|| Arc::new(Semaphore::new(max))),
            open,
            refused,
            refusal: refusal_response().into(),
        }
    }
}

/// The answer to a connection beyond the cap: the error envelope every 503 has.
fn refusal_response() -> Vec<u8> {
    let body = serde_json::to_vec(&crate::bodies::ErrorEnvelope {
        success: false,
        error: crate::bodies::ErrorBody {
            code: "OVERLOADED",
            message: "Too many connections; retry shortly".into(),
            details: None,
        },
    })
    .unwrap_or_default();
    let mut response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

/// Reads the request head (so closing does not reset the connection before the client
/// read the answer), answers 503 and closes.
async fn refuse(mut stream: TcpStream, response: Arc<[u8]>) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let read_head = async {
        while head.len() < REFUSAL_READ_MAX && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(REFUSAL_READ_TIMEOUT, read_head).await;
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

impl axum::serve::Listener for LimitedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            let permit = match &self.permits {
                Some(permits) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        self.refused.inc();
                        tokio::spawn(refuse(stream, Arc::clone(&self.refusal)));
                        continue;
                    }
                },
                None => None,
            };
            self.open.inc();
            let io = CountedStream {
                stream,
                open: self.open.clone(),
                _permit: permit,
            };
            return (io, addr);
        }
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

    async fn listener(max: usize) -> (LimitedListener, SocketAddr, IntGauge, IntCounter) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let open = IntGauge::new("open", "open").unwrap();
        let refused = IntCounter::new("refused", "refused").unwrap();
        (
            LimitedListener::new(tcp, max, open.clone(), refused.clone()),
            addr,
            open,
            refused,
        )
    }

    /// Sends a request head and reads the whole answer.
    async fn request(addr: SocketAddr) -> String {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"POST /api/v1/users HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answer))
            .await
            .expect("answered and closed at once")
            .unwrap();
        answer
    }

    #[tokio::test]
    async fn a_connection_beyond_the_cap_gets_503_with_retry_after_at_once() {
        let (mut listener, addr, open, refused) = listener(2).await;
        let accepting = tokio::spawn(async move {
            let first = listener.accept().await;
            let second = listener.accept().await;
            // Keeps accepting: refusals happen inside accept.
            let third = listener.accept().await;
            (first, second, third)
        });
        let _held: Vec<TcpStream> =
            futures::future::join_all((0..2).map(|_| TcpStream::connect(addr)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        tokio::time::timeout(Duration::from_secs(5), async {
            while open.get() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();

        let answer = request(addr).await;
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("retry-after: 1\r\n"), "{answer}");
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(
            (body["success"].as_bool(), body["error"]["code"].as_str()),
            (Some(false), Some("OVERLOADED"))
        );
        assert_eq!((open.get(), refused.get()), (2, 1));
        accepting.abort();
    }

    #[tokio::test]
    async fn a_closed_connection_frees_its_place_under_the_cap() {
        let (mut listener, addr, open, refused) = listener(1).await;
        let client = TcpStream::connect(addr).await.unwrap();
        let (first, _) = listener.accept().await;
        assert_eq!(open.get(), 1);
        drop((first, client));
        assert_eq!(open.get(), 0);
        let _second = TcpStream::connect(addr).await.unwrap();
        let taken = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        assert!(taken.is_ok());
        assert_eq!((open.get(), refused.get()), (1, 0));
    }

    #[tokio::test]
    async fn without_a_cap_every_connection_is_taken() {
        let (mut listener, addr, open, _) = listener(0).await;
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
