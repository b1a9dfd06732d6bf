//! The second, independent Kafka client of the test suite: kafka-python, a pure-Python
//! implementation of the protocol (no librdkafka), so a feature that works with only one client
//! is caught.
//!
//! The first test that needs it creates a virtual environment under the target directory
//! (`target/pyenv`) and installs the pinned kafka-python from PyPI into it; later tests and
//! later runs reuse it. A lock file keeps parallel test binaries from installing twice. Nothing
//! outside the target directory is touched, so a fresh clone needs only `python3` with its
//! `venv` module and `pip` access to PyPI.
//!
//! Scripts live in `tests/python/` and get the broker's address in `BOOTSTRAP`; they print
//! one JSON object per line on stdout, which the Rust test parses and asserts on, and exit
//! non-zero with a traceback on stderr when something fails.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};

/// The kafka-python release the tests run against.
pub(crate) const KAFKA_PYTHON: &str = "kafka-python==3.0.12";

/// `target/pyenv`: beside the test binaries' own temporary directory.
fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("pyenv")
}

/// The venv's interpreter, with kafka-python installed (installing it on first use).
pub(crate) fn python() -> PathBuf {
    let dir = venv_dir();
    let python = dir.join("bin").join("python3");
    let marker = dir.join(format!(".installed-{KAFKA_PYTHON}"));
    if marker.exists() {
        return python;
    }
    fs::create_dir_all(dir.parent().expect("parent")).expect("create the target directory");
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path).expect("create the pyenv lock file");
    lock.lock().expect("lock the pyenv lock file");
    if !marker.exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&dir));
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            KAFKA_PYTHON,
        ]));
        File::create(&marker).expect("mark the pyenv installed");
    }
    drop(lock);
    python
}

/// Runs `tests/python/<script>` with `BOOTSTRAP` set and `args`; returns its output, asserting
/// it exited 0 (stdout and stderr are shown when it did not).
pub(crate) fn run_script(script: &str, bootstrap: &str, args: &[&str]) -> Output {
    let child = {
        let _spawning = SPAWNING.lock().unwrap_or_else(PoisonError::into_inner);
        script_command(script, bootstrap, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python")
    };
    let output = child.wait_with_output().expect("python's output");
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Held while [`run_script`] starts its child. From fork to exec a child holds a copy of every
/// descriptor of the test process, `flock`ed files included, so a lock a sibling test has just
/// dropped can outlive its drop by that window. A test that opens a store and drops it for a
/// server to open next (the offline `brook user create` before `Server::start`) holds this
/// meanwhile, so no child can keep that store locked under the server.
pub(crate) static SPAWNING: Mutex<()> = Mutex::new(());

/// The command that runs `tests/python/<script>`, for tests that need to start it in the
/// background or expect it to fail.
pub(crate) fn script_command(script: &str, bootstrap: &str, args: &[&str]) -> Command {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
        .join(script);
    let mut command = Command::new(python());
    command
        .arg(path)
        .args(args)
        .env("BOOTSTRAP", bootstrap)
        .env("PYTHONUNBUFFERED", "1");
    command
}

/// The JSON lines a script printed on stdout.
pub(crate) fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn run(command: &mut Command) {
    let output = command.output().expect("start the command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
