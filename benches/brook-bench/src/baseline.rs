//! The baseline each run is compared with, measured in the same run: plain TCP over loopback
//! moving the same bytes in the same shape, with nothing in between (no protocol, no broker,
//! no disk). A door's figure divided by it says what the door and the log cost on top of the
//! network path itself.
//!
//! - **produce**: one connection per producer; each batch is one frame (`u32` length + the
//!   batch's record bytes) answered by an 8-byte ack, with up to `--in-flight` frames
//!   unanswered; latency is frame sent to ack, once per record. Under `sync` durability the
//!   server writes and fdatasyncs each frame to a file before acking it. Against a separate
//!   server the same runs again with its server apart ([`produce_apart`]).
//! - **consume**: one connection per consumer; the server streams the consumer's share of the
//!   bytes in batch-sized frames; latency is the time of each frame's read.
//! - **e2e**: one connection per producer to an echo server, frames of one batch sent on a
//!   thread at `--rate`, each stamped; latency is stamp to echo (two loopback hops, as producer
//!   to broker to subscriber).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::apart::Apart;
use super::report::{histogram, record, Measured};
use super::workload::{payload, since_stamp, stamped, Plan};

const ACK: [u8; 8] = *b"ack.ack.";

/// `sync`: the server also appends each frame to a file and fdatasyncs it before the ack, as
/// brook does under `sync` durability (one fsync per frame: no group commit).
pub(crate) async fn produce(plan: &Plan, sync: bool) -> anyhow::Result<Measured> {
    let fsync = sync.then_some(Fsync::OnThePool);
    let addr = spawn_server(move |socket| ack_frames(socket, fsync)).await?;
    send_to(addr, plan).await
}

/// The produce baseline with its server apart from the clients ([`Apart`]: its own thread and
/// runtime, `workers` worker threads or tokio's default), as a separate `brook serve` is: each
/// frame and each ack wakes a thread on the other side. With `sync`, the connection's thread
/// writes and fdatasyncs each frame itself, the worker's other tasks handed to another thread
/// first (`block_in_place`), as brook does with a lone awaited `sync` batch.
pub(crate) async fn produce_apart(
    plan: &Plan,
    sync: bool,
    workers: Option<u16>,
) -> anyhow::Result<Measured> {
    let fsync = sync.then_some(Fsync::InPlace);
    let server = Apart::start(
        "baseline-apart",
        workers,
        move |listener, stopped| async move {
            tokio::select! {
                () = accept(listener, move |socket| ack_frames(socket, fsync)) => {}
                _ = stopped => {}
            }
        },
    )?;
    let measured = send_to(server.addr, plan).await;
    server.stop().await;
    measured
}

async fn send_to(addr: SocketAddr, plan: &Plan) -> anyhow::Result<Measured> {
    run_clients(addr, plan, plan.producers, |index, socket| {
        send_frames(socket, plan.share(index, plan.producers), plan.clone())
    })
    .await
}

pub(crate) async fn consume(plan: &Plan) -> anyhow::Result<Measured> {
    let addr = spawn_server(stream_frames).await?;
    let frame = (plan.batch * plan.record_bytes) as u64;
    run_clients(addr, plan, plan.consumers, |index, socket| {
        let bytes = plan.share(index, plan.consumers) * plan.record_bytes as u64;
        read_frames(socket, bytes, frame)
    })
    .await
}

pub(crate) async fn e2e(plan: &Plan) -> anyhow::Result<Measured> {
    let frame = plan.batch * plan.record_bytes;
    let addr = spawn_server(move |socket| echo_frames(socket, frame)).await?;
    let epoch = Instant::now();
    let mut threads = Vec::with_capacity(plan.producers);
    for index in 0..plan.producers {
        let socket = std::net::TcpStream::connect(addr).context("baseline connect")?;
        socket.set_nodelay(true)?;
        let reader = socket.try_clone()?;
        let records = plan.share(index, plan.producers);
        let rate = plan.rate as f64 / plan.producers as f64;
        let (send_plan, read_plan) = (plan.clone(), plan.clone());
        threads.push((
            std::thread::spawn(move || paced_frames(socket, records, rate, epoch, &send_plan)),
            std::thread::spawn(move || read_echoes(reader, records, &read_plan, epoch)),
        ));
    }
    // Joined on a blocking-pool thread: on a current-thread runtime (`--client-runtime
    // current-thread`) this task's thread is the one serving the echoes.
    let latency = tokio::task::spawn_blocking(move || {
        let mut latency = histogram();
        for (sender, reader) in threads {
            let sent = sender.join();
            let read = reader.join();
            match (sent, read) {
                (Ok(sent), Ok(read)) => {
                    sent?;
                    latency.add(read?)?;
                }
                _ => bail!("a baseline thread panicked"),
            }
        }
        anyhow::Ok(latency)
    })
    .await
    .context("baseline threads")??;
    Ok(plan.measured(epoch.elapsed(), latency))
}

/// Accepts connections on a loopback port, serving each with `serve` on its own task of this
/// runtime.
async fn spawn_server<F, Fut>(serve: F) -> anyhow::Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("baseline listener")?;
    let addr = listener.local_addr()?;
    tokio::spawn(accept(listener, serve));
    Ok(addr)
}

/// Serves every connection `listener` accepts with `serve`, each on its own task.
async fn accept<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    while let Ok((socket, _)) = listener.accept().await {
        let _ = socket.set_nodelay(true);
        let connection = serve(socket);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "baseline connection ended");
            }
        });
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpStream::connect(addr).await.context("baseline connect")?;
    // As the doors and brook-client do.
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// Connects `count` clients to `addr`, then starts the clock and runs `client` on each, all at
/// once.
async fn run_clients<F, Fut>(
    addr: SocketAddr,
    plan: &Plan,
    count: usize,
    client: F,
) -> anyhow::Result<Measured>
where
    F: Fn(usize, TcpStream) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Histogram<u64>>> + Send + 'static,
{
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(connect(addr).await?);
    }
    let started = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(index, socket)| tokio::spawn(client(index, socket)))
        .collect();
    let mut latency = histogram();
    for task in tasks {
        latency.add(task.await.context("baseline task")??)?;
    }
    Ok(plan.measured(started.elapsed(), latency))
}

/// Where the produce baseline's server writes and fdatasyncs each frame under `sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fsync {
    /// On tokio's blocking pool, off the async workers (as brook's partition drainer does).
    OnThePool,
    /// On the connection's own thread inside `block_in_place` (multi-thread runtime only).
    InPlace,
}

/// Server of the produce baseline: reads length-prefixed frames, acks each; with `fsync`,
/// after appending it to a temporary file and fdatasyncing it there.
async fn ack_frames(mut socket: TcpStream, fsync: Option<Fsync>) -> std::io::Result<()> {
    let mut file = match fsync {
        Some(_) => Some(tempfile::tempfile()?),
        None => None,
    };
    let mut frame = Vec::new();
    loop {
        let len = match socket.read_u32().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        frame.resize(len, 0);
        socket.read_exact(&mut frame).await?;
        match (fsync, file.take()) {
            (Some(Fsync::InPlace), Some(mut out)) => {
                tokio::task::block_in_place(|| {
                    out.write_all(&frame).and_then(|()| out.sync_data())
                })?;
                file = Some(out);
            }
            (Some(Fsync::OnThePool), Some(mut out)) => {
                let (back, written) = tokio::task::spawn_blocking(move || {
                    let written = out.write_all(&frame).and_then(|()| out.sync_data());
                    ((out, frame), written)
                })
                .await?;
                written?;
                (file, frame) = (Some(back.0), back.1);
            }
            (_, none) => file = none,
        }
        socket.write_all(&ACK).await?;
    }
}

/// Client of the produce baseline: `records` in batch frames, `in_flight` unacked at most.
async fn send_frames(
    socket: TcpStream,
    records: u64,
    plan: Plan,
) -> anyhow::Result<Histogram<u64>> {
    let (mut reader, mut writer) = socket.into_split();
    let window = Arc::new(Semaphore::new(plan.in_flight));
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<(Instant, u64)>();
    let writes = {
        let window = Arc::clone(&window);
        let mut frame = payload(4 + plan.batch * plan.record_bytes).to_vec();
        tokio::spawn(async move {
            let mut sent = 0;
            while sent < records {
                let count = (plan.batch as u64).min(records - sent);
                window.acquire().await?.forget();
                let len = count as usize * plan.record_bytes;
                frame[..4].copy_from_slice(&(len as u32).to_be_bytes());
                let _ = sent_tx.send((Instant::now(), count));
                writer.write_all(&frame[..4 + len]).await?;
                sent += count;
            }
            anyhow::Ok(())
        })
    };
    let mut latency = histogram();
    let mut acked = 0;
    let mut ack = [0u8; ACK.len()];
    while acked < records {
        reader.read_exact(&mut ack).await?;
        let Some((started, count)) = sent_rx.recv().await else {
            bail!("baseline writer ended early");
        };
        record(&mut latency, started.elapsed(), count);
        window.add_permits(1);
        acked += count;
    }
    writes.await.context("baseline writer")??;
    Ok(latency)
}

/// Server of the consume baseline: reads `(total bytes, frame bytes)` and streams them.
async fn stream_frames(mut socket: TcpStream) -> std::io::Result<()> {
    let total = socket.read_u64().await?;
    let frame_len = socket.read_u64().await?.max(1);
    let frame = payload(frame_len as usize);
    let mut left = total;
    while left > 0 {
        let len = left.min(frame_len);
        socket.write_all(&frame[..len as usize]).await?;
        left -= len;
    }
    socket.flush().await
}

/// Client of the consume baseline: asks for `bytes` in `frame`-byte frames, times each read.
async fn read_frames(
    mut socket: TcpStream,
    bytes: u64,
    frame: u64,
) -> anyhow::Result<Histogram<u64>> {
    let frame = frame.max(1);
    socket.write_u64(bytes).await?;
    socket.write_u64(frame).await?;
    let mut buf = vec![0u8; frame as usize];
    let mut latency = histogram();
    let mut left = bytes;
    while left > 0 {
        let len = left.min(frame) as usize;
        let started = Instant::now();
        socket.read_exact(&mut buf[..len]).await?;
        record(&mut latency, started.elapsed(), 1);
        left -= len as u64;
    }
    Ok(latency)
}

/// Server of the e2e baseline: sends every `frame`-byte frame back as it came.
async fn echo_frames(mut socket: TcpStream, frame: usize) -> std::io::Result<()> {
    let mut buf = vec![0u8; frame];
    loop {
        match socket.read_exact(&mut buf).await {
            Ok(_) => socket.write_all(&buf).await?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Client of the e2e baseline: one stamped batch frame per interval, as the e2e producers.
fn paced_frames(
    mut socket: std::net::TcpStream,
    records: u64,
    rate: f64,
    epoch: Instant,
    plan: &Plan,
) -> anyhow::Result<()> {
    let template = payload(plan.record_bytes);
    let interval = Duration::from_secs_f64(plan.batch as f64 / rate);
    let start = Instant::now();
    let (mut sent, mut index) = (0, 0u32);
    let mut frame = Vec::with_capacity(plan.batch * plan.record_bytes);
    while sent < records {
        if let Some(wait) = (start + interval * index).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let count = (plan.batch as u64).min(records - sent);
        let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        frame.clear();
        for _ in 0..plan.batch {
            // A short last batch still travels as a whole frame; only `count` are counted.
            frame.extend_from_slice(&stamped(&template, now));
        }
        socket.write_all(&frame)?;
        sent += count;
        index += 1;
    }
    Ok(())
}

/// Reads echoed frames of `batch` records until `records` came back; each record's latency
/// is its frame's stamp's age.
fn read_echoes(
    mut socket: std::net::TcpStream,
    records: u64,
    plan: &Plan,
    epoch: Instant,
) -> anyhow::Result<Histogram<u64>> {
    let mut frame = vec![0u8; plan.batch * plan.record_bytes];
    let mut latency = histogram();
    let mut got = 0;
    while got < records {
        socket.read_exact(&mut frame)?;
        let took = since_stamp(epoch, &frame).unwrap_or_default();
        let count = (plan.batch as u64).min(records - got);
        record(&mut latency, took, count);
        got += count;
    }
    Ok(latency)
}
