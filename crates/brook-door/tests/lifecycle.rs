//! The lifecycle every door shares, on a line-echo door over real sockets: port 0 reports the
//! real port, a taken port names door and address, bad settings are refused before binding,
//! the connection cap holds (connection N+1 waits while the others are busy and is served once
//! one is idle; an idle one is closed to make room; one address's cap likewise), idle and
//! slowly read connections are closed, stop drains requests in flight, and dropping the handle
//! shuts the door.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use brook_broker::Broker;
use brook_door::{
    Acceptor, ConnectionLimits, Door, DoorError, Framing, RunningDoor, Serving, Shutdown,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a client waits to see that it is *not* served.
const NOT_SERVED: Duration = Duration::from_millis(300);

/// Answers each line with the same line; `slow MS` is answered after MS milliseconds. Counts the
/// answers it wrote, so a test can tell whether `stop` waited for one.
struct Echo;

#[derive(Clone)]
struct EchoConfig {
    limits: ConnectionLimits,
    answered: Arc<AtomicUsize>,
}

impl EchoConfig {
    fn new(connections_max: usize) -> Self {
        Self::with(ConnectionLimits::new(connections_max))
    }

    fn with(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            answered: Arc::default(),
        }
    }
}

impl Door for Echo {
    const NAME: &'static str = "Echo";
    type Backend = Broker;
    type Config = EchoConfig;
    type Error = DoorError;

    fn limits(config: &EchoConfig) -> ConnectionLimits {
        config.limits
    }

    async fn serve(
        _broker: Broker,
        mut connections: Acceptor,
        config: EchoConfig,
        shutdown: Shutdown,
    ) -> Result<(), DoorError> {
        let stopped = shutdown.wait();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                connection = connections.accept() => {
                    tokio::spawn(echo(connection, config.answered.clone(), shutdown.clone()));
                }
                () = &mut stopped => break,
            }
        }
        connections.close().wait().await;
        Ok(())
    }
}

/// One connection: answers lines until the client leaves or the door stops (after the line
/// it is answering). Each line is a request in flight from when it is read until answered.
async fn echo(connection: brook_door::Connection, answered: Arc<AtomicUsize>, shutdown: Shutdown) {
    let requests = connection.requests();
    let (read, mut write) = tokio::io::split(connection);
    let mut lines = BufReader::new(read).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            () = shutdown.wait() => return,
        };
        let Ok(Some(line)) = line else { return };
        let _in_flight = requests.start();
        if let Some(ms) = line.strip_prefix("slow ") {
            let ms = ms.parse().expect("milliseconds");
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
        answered.fetch_add(1, Ordering::SeqCst);
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

async fn start(config: EchoConfig) -> RunningDoor<Echo> {
    let broker = Broker::ephemeral().await.expect("broker");
    RunningDoor::<Echo>::start(broker, any_port(), config)
        .await
        .expect("door starts")
}

/// A client of the echo door.
struct Client {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let (read, write) = TcpStream::connect(addr)
            .await
            .expect("connect")
            .into_split();
        Client {
            lines: BufReader::new(read).lines(),
            write,
        }
    }

    async fn send(&mut self, line: &str) {
        self.write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("send");
    }

    async fn answer(&mut self) -> Option<String> {
        tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("an answer in time")
            .expect("read")
    }

    async fn call(&mut self, line: &str) -> String {
        self.send(line).await;
        self.answer().await.expect("answered")
    }
}

#[tokio::test]
async fn port_zero_reports_the_real_port_and_a_taken_port_names_door_and_address() {
    let door = start(EchoConfig::new(4)).await;
    let addr = door.local_addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(Client::connect(addr).await.call("hello").await, "hello");

    let broker = Broker::ephemeral().await.expect("broker");
    let err = RunningDoor::<Echo>::start(broker, addr, EchoConfig::new(4))
        .await
        .expect_err("the port is taken");
    assert!(matches!(err, DoorError::Bind { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("Echo") && text.contains(&addr.to_string()),
        "{text}"
    );
    door.stop().await.expect("stops");
}

#[tokio::test]
async fn a_cap_out_of_bounds_is_refused_before_anything_is_bound() {
    let broker = Broker::ephemeral().await.expect("broker");
    for connections_max in [0, brook_door::accept::CONNECTIONS_MAX_BOUND + 1] {
        let err = RunningDoor::<Echo>::start(
            broker.clone(),
            any_port(),
            EchoConfig::new(connections_max),
        )
        .await
        .expect_err("out of bounds");
        let text = err.to_string();
        assert!(
            matches!(err, DoorError::Config { door: "Echo", .. })
                && text.contains("connections_max"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_connection_past_the_cap_waits_while_the_others_are_busy() {
    let door = start(EchoConfig::new(2)).await;
    let addr = door.local_addr();
    let mut first = Client::connect(addr).await;
    let mut second = Client::connect(addr).await;
    assert_eq!(first.call("one").await, "one");
    assert_eq!(second.call("two").await, "two");
    // Both busy: a request in flight on each.
    first.send("slow 1500").await;
    second.send("slow 3000").await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The third connect succeeds, but nothing of it is read while both are busy.
    let mut third = Client::connect(addr).await;
    third.send("three").await;
    let waited = tokio::time::timeout(NOT_SERVED, third.lines.next_line()).await;
    assert!(waited.is_err(), "served past the cap: {waited:?}");

    // Once the first has answered, it is idle: it is closed and the third takes its place.
    assert_eq!(first.answer().await.as_deref(), Some("slow 1500"));
    assert_eq!(third.answer().await.as_deref(), Some("three"));
    assert_eq!(first.answer().await, None, "the idle connection made room");
    door.stop().await.expect("stops");
}

#[tokio::test]
async fn a_full_door_closes_the_connection_idle_longest_to_let_a_client_in() {
    let door = start(EchoConfig::new(2)).await;
    let addr = door.local_addr();
    let mut oldest = Client::connect(addr).await;
    assert_eq!(oldest.call("one").await, "one");
    let mut busy = Client::connect(addr).await;
    assert_eq!(busy.call("two").await, "two");
    busy.send("slow 3000").await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut newcomer = Client::connect(addr).await;
    assert_eq!(newcomer.call("three").await, "three", "served at once");
    assert_eq!(oldest.answer().await, None, "the idle one was closed");
    drop(busy);
    door.stop().await.expect("stops");
}

#[tokio::test]
async fn an_address_past_its_cap_closes_its_own_idle_connection_or_is_refused() {
    let door = start(EchoConfig::with(
        ConnectionLimits::new(8).with_per_addr_max(2),
    ))
    .await;
    let addr = door.local_addr();
    let mut first = Client::connect(addr).await;
    assert_eq!(first.call("one").await, "one");
    let mut second = Client::connect(addr).await;
    second.send("slow 3000").await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    // At its cap of 2: the idle first is closed for the third.
    let mut third = Client::connect(addr).await;
    assert_eq!(third.call("three").await, "three");
    assert_eq!(first.answer().await, None, "the idle one made room");
    third.send("slow 3000").await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Both busy now: a fourth from the same address is refused (closed unanswered).
    let mut fourth = Client::connect(addr).await;
    fourth.send("four").await;
    let refused = tokio::time::timeout(PATIENCE, fourth.lines.next_line())
        .await
        .expect("closed in time");
    assert!(matches!(refused, Ok(None) | Err(_)), "{refused:?}");
    drop((second, third));
    door.stop().await.expect("stops");
}

#[tokio::test]
async fn idle_and_slowly_read_connections_are_closed_busy_ones_are_not() {
    let limits = ConnectionLimits::new(8)
        .with_idle_max(Duration::from_millis(400))
        .with_request_read_max(Duration::from_millis(200), Framing::Sequential);
    let door = start(EchoConfig::with(limits)).await;
    let addr = door.local_addr();
    let mut idle = Client::connect(addr).await;
    assert_eq!(idle.call("hi").await, "hi");
    let mut slowloris = Client::connect(addr).await;
    slowloris.write.write_all(b"never end").await.expect("send");
    let mut busy = Client::connect(addr).await;
    busy.send("slow 1200").await;

    assert_eq!(
        slowloris.answer().await,
        None,
        "a line never finished is cut off"
    );
    assert_eq!(idle.answer().await, None, "an idle connection is closed");
    assert_eq!(
        busy.answer().await.as_deref(),
        Some("slow 1200"),
        "a request in flight outlives the idle limit"
    );
    door.stop().await.expect("stops");
}

#[tokio::test]
async fn stop_drains_the_request_in_flight_and_refuses_new_connections() {
    let config = EchoConfig::new(4);
    let answered = config.answered.clone();
    let door = start(config).await;
    let addr = door.local_addr();
    let mut client = Client::connect(addr).await;
    assert_eq!(client.call("warm").await, "warm");
    client.send("slow 300").await;
    // The request is in flight once the door is sleeping on it; give it time to be read.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let stopping = tokio::spawn(door.stop());
    assert_eq!(client.answer().await.as_deref(), Some("slow 300"));
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("stops in time")
        .expect("stop task")
        .expect("stops clean");
    assert_eq!(
        answered.load(Ordering::SeqCst),
        2,
        "stop returned only after the request in flight was answered"
    );
    // The door closed the connection after answering, and the port no longer accepts.
    assert_eq!(client.answer().await, None);
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn dropping_the_handle_shuts_the_door() {
    let door = start(EchoConfig::new(4)).await;
    let addr = door.local_addr();
    drop(door);
    let refused = async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(PATIENCE, refused)
        .await
        .expect("the port closes after the handle is dropped");
}

#[tokio::test]
async fn a_door_with_its_protocol_forgotten_stops_the_same_way() {
    let mut door: Box<dyn Serving> = Box::new(start(EchoConfig::new(4)).await);
    assert_eq!(door.door(), "Echo");
    let addr = door.local_addr();
    assert_eq!(Client::connect(addr).await.call("hi").await, "hi");

    // Not stopped: waiting on it times out, and waiting again is still possible.
    let early = tokio::time::timeout(NOT_SERVED, door.finished()).await;
    assert!(early.is_err(), "ended by itself: {early:?}");

    door.begin_stop();
    tokio::time::timeout(PATIENCE, door.finished())
        .await
        .expect("drains in time")
        .expect("stops clean");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
