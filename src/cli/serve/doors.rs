//! A running brook: the broker and its doors, started together and stopped together.
//!
//! [`Server::start`] opens the broker first (so a second `brook serve` on the same data
//! directory fails on the lock, naming its holder, before touching any port), then binds every
//! door that is on before serving any of them (so a taken port fails the start with one line
//! naming the door and the address, and nothing half-started is left behind). [`Server::stop`]
//! tells every door to stop accepting, lets requests in flight finish (within the drain
//! timeout), then closes the broker, which writes the clean-shutdown marker.
//!
//! `brook serve` runs one; `brook bench --embedded` runs another on a temporary directory and
//! port 0, so the bench goes through exactly the doors `brook serve` starts.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use brook_broker::Broker;
use brook_server::{listener, Shutdown};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::config::{Listen, ServeConfig};

/// One of brook's network doors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Grpc,
    Kafka,
    Http,
}

impl Door {
    pub const ALL: [Door; 3] = [Door::Grpc, Door::Kafka, Door::Http];

    /// The name used in output and settings (`grpc` for `grpc_addr`).
    pub fn name(self) -> &'static str {
        match self {
            Door::Grpc => "grpc",
            Door::Kafka => "kafka",
            Door::Http => "http",
        }
    }

    /// The name brook-server's listener errors use.
    fn label(self) -> &'static str {
        match self {
            Door::Grpc => "gRPC",
            Door::Kafka => "Kafka",
            Door::Http => "HTTP",
        }
    }

    fn addr(self, config: &ServeConfig) -> Listen {
        match self {
            Door::Grpc => config.grpc_addr,
            Door::Kafka => config.kafka_addr,
            Door::Http => config.http_addr,
        }
    }
}

/// A door that is serving.
#[derive(Debug)]
pub struct RunningDoor {
    pub door: Door,
    /// The bound address (the real port when the setting said port 0).
    pub addr: SocketAddr,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The broker and its doors.
#[derive(Debug)]
pub struct Server {
    broker: Broker,
    shutdown: Shutdown,
    doors: Vec<RunningDoor>,
    drain_timeout: Duration,
}

impl Server {
    /// Opens the broker and starts every door that is on.
    pub async fn start(config: &ServeConfig) -> anyhow::Result<Server> {
        let data_dir = config.broker.data_dir.display().to_string();
        let broker = Broker::open(config.broker.clone())
            .await
            .with_context(|| format!("cannot open the broker on {data_dir}"))?;
        log_recovery(&broker);
        let listeners = match bind_doors(config).await {
            Ok(listeners) => listeners,
            Err(e) => {
                close_broker(&broker).await;
                return Err(e);
            }
        };
        let shutdown = Shutdown::new();
        let mut doors = Vec::with_capacity(listeners.len());
        for (door, listener, addr) in listeners {
            let task = spawn(door, broker.clone(), listener, config, &shutdown);
            tracing::info!(door = door.name(), %addr, "door listening");
            doors.push(RunningDoor { door, addr, task });
        }
        Ok(Server {
            broker,
            shutdown,
            doors,
            drain_timeout: config.drain_timeout(),
        })
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Where `door` listens, if it is serving.
    pub fn addr(&self, door: Door) -> Option<SocketAddr> {
        self.doors.iter().find(|d| d.door == door).map(|d| d.addr)
    }

    /// The doors serving, in [`Door::ALL`] order.
    pub fn doors(&self) -> &[RunningDoor] {
        &self.doors
    }

    /// Resolves when a door stops by itself, which only a failure makes it do; the door is
    /// then no longer in [`Server::doors`]. Never resolves when no door is serving.
    pub async fn door_stopped(&mut self) -> (Door, anyhow::Result<()>) {
        if self.doors.is_empty() {
            return std::future::pending().await;
        }
        let tasks = self.doors.iter_mut().map(|d| &mut d.task);
        let (result, index, _) = futures::future::select_all(tasks).await;
        let door = self.doors.remove(index).door;
        (door, flatten(door, result))
    }

    /// Stops accepting, lets requests in flight finish (up to the drain timeout), and closes
    /// the broker clean. Returns the first door failure, after the broker is closed.
    pub async fn stop(self) -> anyhow::Result<()> {
        let Server {
            broker,
            shutdown,
            doors,
            drain_timeout,
            ..
        } = self;
        shutdown.trigger();
        let mut failure = None;
        let deadline = tokio::time::Instant::now() + drain_timeout;
        for RunningDoor { door, mut task, .. } in doors {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(result) => {
                    if let Err(e) = flatten(door, result) {
                        failure.get_or_insert(e);
                    }
                }
                Err(_) => {
                    tracing::warn!(
                        door = door.name(),
                        timeout_ms = drain_timeout.as_millis(),
                        "door did not drain in time; closing the log under it"
                    );
                    task.abort();
                }
            }
        }
        broker
            .close()
            .await
            .context("cannot close the broker clean")?;
        failure.map_or(Ok(()), Err)
    }
}

/// Binds every door that is on, in [`Door::ALL`] order.
async fn bind_doors(config: &ServeConfig) -> anyhow::Result<Vec<(Door, TcpListener, SocketAddr)>> {
    let mut bound = Vec::new();
    for door in Door::ALL {
        let Listen::On(addr) = door.addr(config) else {
            continue;
        };
        let listener = listener::bind(door.label(), addr).await?;
        let addr = listener::local_addr(door.label(), &listener)?;
        bound.push((door, listener, addr));
    }
    Ok(bound)
}

/// Serves `door` on `listener` on a new task until `shutdown` fires and its requests in flight
/// are done.
fn spawn(
    door: Door,
    broker: Broker,
    listener: TcpListener,
    config: &ServeConfig,
    shutdown: &Shutdown,
) -> JoinHandle<anyhow::Result<()>> {
    let stop = shutdown.wait();
    match door {
        Door::Grpc => {
            let grpc = config.grpc.clone();
            tokio::spawn(async move {
                brook_server::serve_grpc(broker, listener, grpc, stop).await?;
                Ok(())
            })
        }
        Door::Kafka => {
            // `KafkaConfig::addr` is only read by `brook_kafka::start`; we bound the listener.
            let kafka = config.kafka.clone();
            tokio::spawn(async move {
                brook_kafka::serve(broker, listener, kafka, stop).await?;
                Ok(())
            })
        }
        Door::Http => {
            let http = config.http.clone();
            tokio::spawn(async move {
                brook_server::serve_http(broker, listener, http, stop).await?;
                Ok(())
            })
        }
    }
}

fn flatten(
    door: Door,
    result: Result<anyhow::Result<()>, tokio::task::JoinError>,
) -> anyhow::Result<()> {
    result
        .with_context(|| format!("the {} door's task failed", door.label()))?
        .with_context(|| format!("the {} door stopped", door.label()))
}

/// Says what opening the data directory found: a clean stop, or what recovery repaired.
fn log_recovery(broker: &Broker) {
    let reports = broker.recovery_reports();
    let recovered: Vec<_> = reports.iter().filter(|(_, r)| !r.clean).collect();
    for (partition, report) in &recovered {
        tracing::warn!(
            %partition,
            scanned_bytes = report.scanned_bytes,
            truncated_bytes = report.truncated_bytes,
            rebuilt_indexes = report.rebuilt_indexes,
            deleted_segments = report.deleted_segments,
            corruption = ?report.corruption,
            "partition recovered after an unclean stop"
        );
    }
    tracing::info!(
        partitions = reports.len(),
        recovered = recovered.len(),
        dir = %broker.data_dir().display(),
        "data directory opened"
    );
}

/// Closes the broker after a failed start; the start's error is the one reported.
async fn close_broker(broker: &Broker) {
    if let Err(e) = broker.close().await {
        tracing::warn!(error = %e, "closing the broker after a failed start");
    }
}
