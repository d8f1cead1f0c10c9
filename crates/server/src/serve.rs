//! The accept loop: each connection served by hyper directly (not `axum::serve`), so that the
//! request timeout bounds every way a client can hold a connection: headers sent a byte at a
//! time (hyper's header timeout), a stalled body (a deadline on the body), and a connection that
//! sends nothing at all (closed once idle for the timeout with no request in progress).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::{AppState, router};

/// Serves the application on `listener` until `shutdown` completes, then lets in-flight requests
/// finish and writes every event they recorded before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let recorder = state.recorder.clone();
    let timeout = state.request_timeout;
    // Trailing slashes (`/scim/v2/Users/`) are common in IdP configurations; treat them as absent.
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(state));
    let app = tower_http::timeout::RequestBodyDeadlineLayer::new(timeout).layer(app);
    let mut connections = auto::Builder::new(TokioExecutor::new());
    connections.http1().timer(TokioTimer::new()).header_read_timeout(timeout);
    connections.http2().timer(TokioTimer::new()).keep_alive_interval(timeout).keep_alive_timeout(timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: the
                    // listener itself is fine; pause so that a descriptor shortage can clear.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let activity = Arc::new(Activity::new());
        let (app, requests) = (app.clone(), activity.clone());
        let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(remote));
            let serving = InFlight::start(requests.clone());
            let response = tower::ServiceExt::oneshot(app.clone(), request.map(axum::body::Body::new));
            async move {
                let response = response.await;
                drop(serving);
                response
            }
        });
        let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
        let connection = graceful.watch(connections.serve_connection_with_upgrades(io, service).into_owned());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            loop {
                tokio::select! {
                    ended = &mut connection => {
                        if let Err(e) = ended {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    () = tokio::time::sleep(timeout) => {
                        // Dropping the connection closes it.
                        if activity.idle(timeout) {
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    // Every finished request recorded its event; write them all before the process may exit.
    recorder.flush().await;
    Ok(())
}

/// What a connection is doing: when it last moved bytes, and how many requests it is serving.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the last read or write.
    last_io: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity { opened: Instant::now(), last_io: AtomicU64::new(0), requests: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        let now = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io.store(now, Ordering::Relaxed);
    }

    /// Whether the connection has served no request and moved no byte for `timeout`: a request
    /// that takes long (a large bulk) keeps its connection however quiet it is.
    fn idle(&self, timeout: Duration) -> bool {
        let quiet = self.opened.elapsed().saturating_sub(Duration::from_millis(self.last_io.load(Ordering::Relaxed)));
        self.requests.load(Ordering::Relaxed) == 0 && quiet >= timeout
    }
}

/// A request in progress on a connection, until dropped (also when its client goes away).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that notes in [`Activity`] every time bytes move.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
