//! What the door fuzz targets share: one ephemeral broker with a topic to aim at, served by
//! the real doors on loopback from a runtime that lives as long as the fuzzing process, and a
//! client side of plain blocking sockets. A panic in a door's task aborts the process
//! (cargo-fuzz builds with `panic = "abort"`), so libFuzzer sees it as a crash.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use brook_broker::{Broker, NewTopic};
use brook_door::{Door, RunningDoor};

/// The runtime and broker every iteration shares.
pub struct Served {
    pub runtime: tokio::runtime::Runtime,
    pub broker: Broker,
}

pub fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let broker = runtime.block_on(async {
            let broker = Broker::ephemeral().await.expect("broker");
            broker
                .create_topic(NewTopic::new("fuzz", 2))
                .await
                .expect("topic");
            broker
        });
        Served { runtime, broker }
    })
}

/// Starts door `D` with `config` on a loopback port over the shared broker; it serves until the
/// process ends. Its address.
pub fn start_door<D: Door>(config: D::Config) -> SocketAddr
where
    Broker: Into<D::Backend>,
{
    let served = served();
    let door = served
        .runtime
        .block_on(RunningDoor::<D>::start(
            served.broker.clone(),
            "127.0.0.1:0".parse().expect("address"),
            config,
        ))
        .expect("door starts");
    let addr = door.local_addr();
    std::mem::forget(door);
    addr
}

/// Sends `request` on a fresh connection to `addr` and reads until the door answers and closes
/// (or a short timeout: the door may wait for more bytes, which is fine).
pub fn exchange(addr: SocketAddr, request: &[u8]) {
    ignore_sigpipe();
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    if stream.write_all(request).is_err() {
        return;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

/// A door may answer and close before it reads a whole request (HTTP's 413 on a
/// `Content-Length` over its limit): the client's next write then gets EPIPE, as it should,
/// rather than a SIGPIPE that kills the fuzzing process. A Rust `main` ignores SIGPIPE;
/// libFuzzer's `main` does not, so this does, once.
fn ignore_sigpipe() {
    static IGNORED: OnceLock<()> = OnceLock::new();
    IGNORED.get_or_init(|| {
        // SAFETY: setting a signal's disposition to SIG_IGN touches no memory of ours; it runs
        // once, before any socket of this process is written.
        #[allow(unsafe_code)]
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    });
}
