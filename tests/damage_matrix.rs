//! The damage matrix: every file kind brook keeps on disk, each damaged four ways, and what
//! `brook log check` and `brook serve` (both the built binary) each say about it.
//!
//! One pristine data directory is written through a real `brook serve` over HTTP and stopped
//! cleanly with SIGTERM: topic `victim` (one partition, three segments of four records, an
//! index entry at every batch), topic `bystander` (one partition, twelve records), and group
//! `g`'s committed offset for `victim-0`. Each case copies it, damages one file, then
//!
//! - runs `brook log check` and holds its exit code and its `error:`/`warning:` lines to what
//!   the case expects (the exit code is 1 exactly when serve will not repair the damage by
//!   itself);
//! - starts `brook serve` on the copy, which must get ready whatever the damage, and reads over
//!   HTTP: every record of `bystander-0` (untouched partitions always serve), what `victim-0`
//!   serves (all of it, a prefix and then an error naming the partition and offset, or only
//!   an error), and group `g`'s committed offset (kept, or refused while the offsets file is
//!   fenced). A record served is always the one written at its offset: never a wrong byte.
//!
//! | file | flip a byte | cut short | delete | zero a page |
//! |------|-------------|-----------|--------|-------------|
//! | sealed segment `.log` | check fails; served up to the batch, which is refused (corrupt) | check fails; the log ends before it, read-only | same | same |
//! | `.index`, `.timeindex` | check warns (rebuilt); all served | same | same | same |
//! | `checkpoint.0` (one of two copies) | check warns; all served | same | check clean; all served | same |
//! | topic file | check fails; the topic offline, every door says so | same | check warns; the next open sets the partition directory aside (`victim-0.orphaned`, kept byte for byte, never served) | as flip |
//! | `groups/offsets.meta.1` (the copy holding the one commit) | check warns; the other copy serves, without that commit (404) | same | same | same |
//! | `groups/offsets.meta.0` and `.1` (both copies) | check fails; offsets fenced (503), partitions serve | same | same | same |
//!
//! The exact expectations are in [`cases`]; `docs/reliability.md` ("The damage matrix") says
//! what each row means for an operator. The cases run four at a time to stay well under a
//! minute on a 2-core machine.

mod scale_out_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use scale_out_support::{brook, Served};
use serde_json::Value;

/// How long the test waits for an HTTP answer; only reached when something is wrong.
const PATIENCE: Duration = Duration::from_secs(60);
/// Records written to each topic, one batch each.
const RECORDS: u64 = 12;
/// Group `g`'s committed offset for `victim-0`.
const COMMITTED: u64 = 5;

/// `brook serve` on `data` with every door on port 0, ready.
fn serve(data: &Path) -> Served {
    let data = data.to_str().expect("utf-8 path");
    Served::start(&[
        "--data-dir",
        data,
        "--grpc-addr",
        "127.0.0.1:0",
        "--kafka-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ])
}

fn http_addr(served: &Served) -> SocketAddr {
    served.addr("http").parse().expect("HTTP address")
}

/// One HTTP/1.1 request: the status code and the body parsed as JSON (`Null` when empty).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP door");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8(answer).expect("utf-8 answer");
    let (head, rest) = answer.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let text = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    let json = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
}

fn post(addr: SocketAddr, path: &str, body: Value) -> Value {
    let (status, answer) = http(addr, "POST", path, Some(&body));
    assert!(
        (200..300).contains(&status),
        "POST {path}: {status} {answer}"
    );
    answer
}

/// The value written at `offset` of `topic`.
fn value_at(topic: &str, offset: u64) -> String {
    format!("{topic}-{offset:04}-{}", "x".repeat(120))
}

/// The pristine data directory (see the module doc), written once per test run.
fn pristine() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let served = serve(dir.path());
        let addr = http_addr(&served);
        post(
            addr,
            "/v1/topics",
            serde_json::json!({"name": "victim", "partitions": 1,
                "config": {"segment.bytes": 1024, "index.interval.bytes": 1}}),
        );
        post(
            addr,
            "/v1/topics",
            serde_json::json!({"name": "bystander", "partitions": 1}),
        );
        for offset in 0..RECORDS {
            for topic in ["victim", "bystander"] {
                let answer = post(
                    addr,
                    &format!("/v1/topics/{topic}/records"),
                    serde_json::json!({"records": [{"partition": 0,
                        "key": format!("k{offset}"), "value": value_at(topic, offset)}]}),
                );
                assert_eq!(answer["offsets"][0]["offset"], offset, "{answer}");
            }
        }
        post(
            addr,
            "/v1/groups/g/offsets",
            serde_json::json!({"offsets": [{"topic": "victim", "partition": 0,
                "offset": COMMITTED}]}),
        );
        served.stop();
        dir
    })
    .path()
}

/// Copies a data directory (flat files two levels deep, as brook lays them out).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// What is done to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// One byte in the middle XORed with 0x5a.
    Flip,
    /// Cut to half its length.
    Truncate,
    /// Removed.
    Delete,
    /// Its first 4 KiB (the whole file, for a small one) overwritten with zeros.
    ZeroPage,
}

const DAMAGES: [Damage; 4] = [
    Damage::Flip,
    Damage::Truncate,
    Damage::Delete,
    Damage::ZeroPage,
];

fn damage(path: &Path, how: Damage) {
    let len = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    assert!(len > 0, "{} is empty: nothing to damage", path.display());
    match how {
        Damage::Flip => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .expect("open");
            let mut byte = [0u8];
            file.read_exact_at(&mut byte, len / 2).expect("read");
            file.write_all_at(&[byte[0] ^ 0x5a], len / 2)
                .expect("write");
        }
        Damage::Truncate => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .expect("open");
            file.set_len(len / 2).expect("truncate");
        }
        Damage::Delete => std::fs::remove_file(path).expect("delete"),
        Damage::ZeroPage => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .expect("open");
            let zeros = vec![0u8; len.min(4096) as usize];
            file.write_all_at(&zeros, 0).expect("zero");
        }
    }
}

/// What the HTTP door serves of `victim-0`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Served0 {
    /// Every record, each the one written at its offset.
    All,
    /// Records `0..n`, each the one written, and the log ends there (its high watermark is
    /// `n`): recovery ended it before damage it found, and nothing past it is deleted.
    Ends(u64),
    /// Records `0..n`, each the one written, then an error with this code at `n`.
    Refused { records: u64, error: &'static str },
}

/// What `brook log check` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Exit 0 with nothing to say.
    Clean,
    /// Exit 0 with a `warning:` naming the file: serve repairs it by itself.
    Warns,
    /// Exit 1 with an `error:` naming the file.
    Fails,
}

/// What group `g`'s committed offset is, as the HTTP door says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offsets {
    Kept,
    /// The group is unknown: nothing says a commit was ever made (see [`cases`]).
    Gone,
    /// Refused with 503: the offsets file is fenced.
    Fenced,
}

/// One row of the matrix: a file, how it is damaged, and what must follow.
struct Case {
    /// The file, relative to the data directory.
    file: &'static str,
    /// A second file damaged the same way.
    also: Option<&'static str>,
    damage: Damage,
    check: Check,
    victim: Served0,
    /// Whether a produce to `victim-0` is accepted (else refused, naming the partition).
    victim_writable: bool,
    offsets: Offsets,
    /// Whether serve sets `victim-0` aside (no topic file claims it, yet it holds records):
    /// check names the new name, serve's log says so, and every segment is kept byte for byte.
    set_aside: bool,
}

/// The segment damaged: the middle one, sealed (offsets 4..=7).
const MIDDLE_SEGMENT: &str = "victim-0/00000000000000000004.log";

/// Every case, built from the rows of the module doc's table.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for damage in DAMAGES {
        // A sealed segment: damage in bytes a clean close vouched for is corruption, never a
        // torn tail, and check fails.
        let (victim, victim_writable) = match damage {
            // Below the recovery point nothing is walked at open: the flipped byte lands in
            // the base offset of the batch at 6, which a read then refuses.
            Damage::Flip => (
                Served0::Refused {
                    records: 6,
                    error: "corrupt_data",
                },
                true,
            ),
            // Recovery finds a segment shorter than its successor's base, or missing, or
            // starting with zeros: the log ends before the damage, read-only, and the
            // segments after it stay on disk for `brook log repair`.
            Damage::Truncate => (Served0::Ends(6), false),
            Damage::Delete | Damage::ZeroPage => (Served0::Ends(4), false),
        };
        cases.push(Case {
            also: None,
            file: MIDDLE_SEGMENT,
            damage,
            check: Check::Fails,
            victim,
            victim_writable,
            offsets: Offsets::Kept,
            set_aside: false,
        });
        // Indexes are derived data: rebuilt, everything served.
        for file in [
            "victim-0/00000000000000000004.index",
            "victim-0/00000000000000000004.timeindex",
        ] {
            cases.push(Case {
                file,
                also: None,
                damage,
                check: Check::Warns,
                victim: Served0::All,
                victim_writable: true,
                offsets: Offsets::Kept,
                set_aside: false,
            });
        }
        // The checkpoint is kept in two copies: damage to one loses nothing. A missing or
        // zeroed copy reads as one never written (a crash can leave either), so check has
        // nothing to say about it.
        cases.push(Case {
            also: None,
            file: "victim-0/checkpoint.0",
            damage,
            check: match damage {
                Damage::Flip | Damage::Truncate => Check::Warns,
                Damage::Delete | Damage::ZeroPage => Check::Clean,
            },
            victim: Served0::All,
            victim_writable: true,
            offsets: Offsets::Kept,
            set_aside: false,
        });
        // A damaged topic file takes its topic offline, and only its topic. A deleted one
        // cannot be told from a delete the crash interrupted (the topic file goes first): the
        // partition directory is an orphan, and as it holds records check warns that the next
        // open sets it aside, which serve then does: never served, never removed.
        let (check, victim) = match damage {
            Damage::Delete => (
                Check::Warns,
                Served0::Refused {
                    records: 0,
                    error: "unknown_topic",
                },
            ),
            _ => (
                Check::Fails,
                Served0::Refused {
                    records: 0,
                    error: "storage_error",
                },
            ),
        };
        cases.push(Case {
            also: None,
            file: "topics/victim.topic",
            damage,
            check,
            victim,
            // With the topic gone, a produce auto-creates a new, empty one.
            victim_writable: damage == Damage::Delete,
            offsets: Offsets::Kept,
            set_aside: damage == Damage::Delete,
        });
        // The committed offsets file: both copies are written when it is created, so either
        // one damaged, missing or zeroed is reported, and the other (here the snapshot before
        // the one commit) serves: at most the last commit is lost, with a warning. Both
        // damaged fence the offsets; partitions serve.
        cases.push(Case {
            file: "groups/offsets.meta.1",
            also: None,
            damage,
            check: Check::Warns,
            victim: Served0::All,
            victim_writable: true,
            offsets: Offsets::Gone,
            set_aside: false,
        });
        cases.push(Case {
            file: "groups/offsets.meta.1",
            also: Some("groups/offsets.meta.0"),
            damage,
            check: Check::Fails,
            victim: Served0::All,
            victim_writable: true,
            offsets: Offsets::Fenced,
            set_aside: false,
        });
    }
    cases
}

/// Reads `victim-0` from offset 0 to its end, or to the first error.
fn read_victim(addr: SocketAddr) -> Result<u64, (u64, u16, Value)> {
    read_partition(addr, "victim")
}

/// Pseudo status of [`read_partition`]: a record other than the one written was served.
const WRONG_RECORD: u16 = 1;
/// Pseudo status of [`read_partition`]: an empty answer below the high watermark.
const EMPTY_BELOW_END: u16 = 2;

fn read_partition(addr: SocketAddr, topic: &str) -> Result<u64, (u64, u16, Value)> {
    let mut offset = 0u64;
    loop {
        let (status, answer) = http(
            addr,
            "GET",
            &format!("/v1/topics/{topic}/partitions/0/records?offset={offset}&max_bytes=1024"),
            None,
        );
        if status != 200 {
            return Err((offset, status, answer));
        }
        let records = answer["records"].as_array().expect("records");
        for record in records {
            if record["offset"] != offset
                || record["value"].as_str() != Some(value_at(topic, offset).as_str())
            {
                // Never a wrong byte: this fails the case whatever it expects.
                return Err((offset, WRONG_RECORD, record.clone()));
            }
            offset += 1;
        }
        let high = answer["high_watermark"].as_u64().expect("high watermark");
        if offset >= high {
            return Ok(offset);
        }
        if records.is_empty() {
            // A consumer would be stuck here for good.
            return Err((offset, EMPTY_BELOW_END, answer));
        }
    }
}

/// Produces one record to `victim-0`: whether it was accepted. A refusal must name the
/// partition and show no server path.
fn produce_victim(addr: SocketAddr, problems: &mut Vec<String>) -> bool {
    let body = serde_json::json!({"records": [{"partition": 0, "value": "after"}]});
    let (status, answer) = http(addr, "POST", "/v1/topics/victim/records", Some(&body));
    if (200..300).contains(&status) {
        return true;
    }
    let message = answer["message"].as_str().unwrap_or("");
    if !message.contains("victim") || message.contains("/tmp") {
        problems.push(format!("a refused produce says: {status} {answer}"));
    }
    false
}

fn committed(addr: SocketAddr) -> Result<u64, u16> {
    let (status, answer) = http(addr, "GET", "/v1/groups/g", None);
    if status != 200 {
        return Err(status);
    }
    Ok(answer["partitions"][0]["committed_offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("a committed offset in {answer}")))
}

/// Runs one case; `Err` says what differed.
fn run_case(case: &Case) -> Result<(), String> {
    let name = match case.also {
        Some(also) => format!("{} and {also} {:?}", case.file, case.damage),
        None => format!("{} {:?}", case.file, case.damage),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(pristine(), dir.path());
    for file in [Some(case.file), case.also].into_iter().flatten() {
        damage(&dir.path().join(file), case.damage);
    }

    let output: Output = brook(&["log", "check", dir.path().to_str().expect("utf-8")])
        .output()
        .expect("run brook log check");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let file_name = Path::new(case.file)
        .file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned();
    let names_it = |prefix: &str| {
        text.lines().any(|l| {
            l.starts_with(prefix)
                && (l.contains(&file_name) || l.contains("victim-0") || l.contains("victim"))
        })
    };
    let seen = match (
        output.status.code(),
        names_it("error:"),
        names_it("warning:"),
    ) {
        (Some(1), true, _) => Check::Fails,
        (Some(0), false, true) => Check::Warns,
        (Some(0), false, false) if !text.contains("warning:") => Check::Clean,
        _ => {
            return Err(format!(
                "{name}: log check exit {:?} said:\n{text}",
                output.status.code()
            ))
        }
    };
    let mut problems = Vec::new();
    if seen != case.check {
        problems.push(format!(
            "log check: {seen:?}, expected {:?}:\n{text}",
            case.check
        ));
    }

    let served = serve(dir.path());
    let addr = http_addr(&served);
    match read_partition(addr, "bystander") {
        Ok(n) if n == RECORDS => {}
        other => problems.push(format!("bystander-0 did not serve everything: {other:?}")),
    }
    let victim = match read_victim(addr) {
        Ok(n) if n == RECORDS => Served0::All,
        Ok(n) => Served0::Ends(n),
        Err((n, WRONG_RECORD, record)) => {
            problems.push(format!("victim-0 served a wrong record at {n}: {record}"));
            Served0::Refused {
                records: n,
                error: "(a wrong record)",
            }
        }
        Err((n, EMPTY_BELOW_END, answer)) => {
            problems.push(format!(
                "victim-0 answered nothing at {n}, below its end: {answer}"
            ));
            Served0::Refused {
                records: n,
                error: "(an empty answer)",
            }
        }
        Err((n, status, answer)) => {
            let code = answer["error_code"].as_str().unwrap_or("?").to_owned();
            let message = answer["message"].as_str().unwrap_or("").to_owned();
            if !message.contains("victim") {
                problems.push(format!(
                    "victim-0's error does not name the partition: {status} {answer}"
                ));
            }
            if message.contains(dir.path().to_str().expect("utf-8")) {
                problems.push(format!("victim-0's error shows a server path: {answer}"));
            }
            Served0::Refused {
                records: n,
                error: Box::leak(code.into_boxed_str()),
            }
        }
    };
    if victim != case.victim {
        problems.push(format!(
            "victim-0 served {victim:?}, expected {:?}",
            case.victim
        ));
    }
    let writable = produce_victim(addr, &mut problems);
    if writable != case.victim_writable {
        problems.push(format!(
            "a produce to victim-0 was {}, expected {}",
            if writable { "accepted" } else { "refused" },
            if case.victim_writable {
                "accepted"
            } else {
                "refused"
            },
        ));
    }
    let offsets = match committed(addr) {
        Ok(COMMITTED) => Offsets::Kept,
        Ok(other) => {
            problems.push(format!("group g's offset is {other}, not {COMMITTED}"));
            Offsets::Kept
        }
        Err(404) => Offsets::Gone,
        Err(503) => Offsets::Fenced,
        Err(status) => {
            problems.push(format!("group g: {status}"));
            Offsets::Kept
        }
    };
    if offsets != case.offsets {
        problems.push(format!(
            "group offsets {offsets:?}, expected {:?}",
            case.offsets
        ));
    }
    let stderr = served.stop();
    let aside = dir.path().join("victim-0.orphaned");
    if case.set_aside {
        if !text.contains("victim-0.orphaned") {
            problems.push(format!(
                "log check does not name the set-aside name:\n{text}"
            ));
        }
        if !stderr.contains("set aside") || !stderr.contains("victim-0.orphaned") {
            problems.push(format!(
                "serve's log does not say what it set aside:\n{stderr}"
            ));
        }
        for entry in std::fs::read_dir(pristine().join("victim-0")).expect("read_dir") {
            let entry = entry.expect("entry");
            let name = entry.file_name();
            if !name.to_string_lossy().ends_with(".log") {
                continue;
            }
            let kept = std::fs::read(aside.join(&name)).ok();
            if kept != Some(std::fs::read(entry.path()).expect("read")) {
                problems.push(format!("{name:?} not kept byte for byte in {aside:?}"));
            }
        }
    } else if aside.exists() {
        problems.push(format!("{aside:?} set aside, though nothing should be"));
    }
    if case.check == Check::Fails && !stderr.contains("victim") && !stderr.contains("offsets") {
        problems.push(format!(
            "serve's log does not name what it fenced:\n{stderr}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}:\n  {}", problems.join("\n  ")))
    }
}

#[test]
fn every_file_kind_damaged_every_way_is_reported_fenced_and_contained() {
    let cases = cases();
    // Written before the threads start, so they share it.
    pristine();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                if let Err(e) = run_case(case) {
                    failures.lock().expect("lock").push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
