//! A server of the bench's own on a runtime apart from the bench's clients: its own thread and
//! tokio multi-thread runtime, built as `brook serve` builds its runtime (tokio's default
//! workers, or `--floor-worker-threads` to match `brook serve --worker-threads`), on a loopback
//! port bound before it starts.
//!
//! A server on the clients' own runtime answers on whichever worker thread the client's task
//! ran on: a request and its answer can cross without any thread being woken, which no
//! separate server offers. The gRPC floor and the produce baseline against a separate
//! `brook serve` run their servers here, so each of their round trips wakes a thread at each end
//! as one to `brook serve` does.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running server apart; [`Apart::stop`] ends it and joins its thread.
pub(crate) struct Apart {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Apart {
    /// Binds a loopback port and runs `serve` on it on a new thread and runtime named `name`;
    /// `serve` returns when the receiver it is given resolves. `workers`: the runtime's worker
    /// threads (`None`: tokio's default, one per core).
    pub(crate) fn start<F, Fut>(name: &str, workers: Option<u16>, serve: F) -> anyhow::Result<Apart>
    where
        F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .with_context(|| format!("{name}: cannot bind a loopback port"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(workers) = workers {
            builder.worker_threads(usize::from(workers));
        }
        let runtime = builder
            .thread_name(name)
            .enable_all()
            .build()
            .with_context(|| format!("{name}: cannot start its runtime"))?;
        let (stop, stopped) = oneshot::channel();
        let label = name.to_owned();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, stopped).await,
                        Err(e) => tracing::warn!(error = %e, server = %label, "cannot listen"),
                    }
                });
            })
            .with_context(|| format!("{name}: cannot start its thread"))?;
        Ok(Apart { addr, stop, thread })
    }

    /// Ends the server and waits for its thread (off the async workers).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_on_threads_of_its_own_until_stopped() {
        let apart = Apart::start("apart-test", Some(1), |listener, stopped| async move {
            let accepting = async {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let name = std::thread::current().name().unwrap_or("").to_owned();
                    let _ = socket.write_all(name.as_bytes()).await;
                }
            };
            tokio::select! {
                () = accepting => {}
                _ = stopped => {}
            }
        })
        .unwrap();
        let mut socket = tokio::net::TcpStream::connect(apart.addr).await.unwrap();
        let mut name = String::new();
        socket.read_to_string(&mut name).await.unwrap();
        assert_eq!(name, "apart-test");
        let addr = apart.addr;
        apart.stop().await;
        // The listener went with the runtime.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
