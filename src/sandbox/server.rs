//! The accept loop, on its own thread and tokio runtime: clients under test may pause
//! their tokio clock, and the server must keep its own time. Written with hyper
//! directly rather than `axum::serve`, because a Reset fault must be able to drop one
//! connection from inside a handler.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long shutdown waits for requests in flight before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// Put into every request's extensions: firing it makes the connection's task drop the
/// connection, closing the socket with no response — a Reset fault.
#[derive(Clone, Debug, Default)]
pub struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    pub fn fire(&self) {
        // notify_one keeps a permit if the connection task is not waiting yet.
        self.0.notify_one();
    }
}

/// The running server; stopping it is `stop`, also done on drop.
pub struct ServerHandle {
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Stops accepting, lets requests in flight finish for a moment, drops the rest,
    /// and waits for the server thread. Bounded: never hangs on a slow request.
    pub fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the sandbox server thread panicked");
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves `router` on `listener` (already bound) from a new thread; returns once the
/// accept loop is running.
pub fn spawn(listener: std::net::TcpListener, router: Router) -> anyhow::Result<ServerHandle> {
    listener
        .set_nonblocking(true)
        .context("cannot make the sandbox listener non-blocking")?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("sandbox-worker")
        .enable_all()
        .build()
        .context("cannot start the sandbox's tokio runtime")?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("sandbox-server".to_string())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => {
                        let _ = ready_tx.send(Ok(()));
                        accept_loop(listener, router, shutdown_rx).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
            // Tasks still running (a Slow fault's sleep) are dropped, not awaited.
            runtime.shutdown_timeout(Duration::from_millis(100));
        })
        .context("cannot start the sandbox server thread")?;
    let mut handle = ServerHandle {
        shutdown,
        thread: Some(thread),
    };
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => {
            handle.stop();
            Err(e).context("cannot listen with the sandbox's runtime")
        }
        Err(_) => {
            handle.stop();
            anyhow::bail!("the sandbox server thread stopped before listening")
        }
    }
}

async fn accept_loop(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "sandbox accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
    connections.abort_all();
}

/// Serves one connection until it ends, its kill signal fires, or shutdown drains it.
async fn serve_connection(stream: TcpStream, router: Router, mut shutdown: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let kill = ConnectionKill::default();
    let service = {
        let kill = kill.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(kill.clone());
            router.clone().oneshot(request.map(Body::new))
        })
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = *shutdown.borrow();
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = kill.0.notified() => return, // dropping the connection closes the socket
            _ = shutdown.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
