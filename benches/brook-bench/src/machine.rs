//! What the machine's CPU idle setup is, printed with every run: on a virtual machine it moves
//! the one-record-at-a-time figures more than anything brook does.
//!
//! An idle CPU of a KVM guest either halts at once (a wake-up then costs an exit to the host and
//! back, tens of microseconds) or first polls for a while (Linux's `haltpoll` cpuidle driver,
//! `guest_halt_poll_ns`, 200 000 by default). A lone record crosses several threads (client,
//! server, back), each usually idle, so a run on a guest that halts at once measures those
//! wake-ups as much as the broker; a run with halt polling, or on bare metal, does not. The
//! setting is read, never changed: it is the machine owner's
//! (`/sys/module/haltpoll/parameters/guest_halt_poll_ns`, or `haltpoll.guest_halt_poll_ns=` on
//! the kernel command line).

use std::path::Path;

/// The cpuidle driver and, for `haltpoll`, its poll limit; `None` where the kernel does not say
/// (not Linux, no cpuidle).
pub(crate) fn cpu_idle() -> Option<String> {
    cpu_idle_under(Path::new("/sys"))
}

/// [`cpu_idle`] read under `sys` (a sysfs root).
fn cpu_idle_under(sys: &Path) -> Option<String> {
    let read = |path: &str| {
        std::fs::read_to_string(sys.join(path))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let driver = read("devices/system/cpu/cpuidle/current_driver")?;
    if driver != "haltpoll" {
        return Some(driver);
    }
    Some(
        match read("module/haltpoll/parameters/guest_halt_poll_ns")
            .and_then(|ns| ns.parse::<u64>().ok())
        {
            Some(0) => "haltpoll, guest_halt_poll_ns 0 (an idle vCPU halts at once: each \
                        wake-up of an idle thread costs an exit to the host)"
                .to_owned(),
            Some(ns) => format!("haltpoll, guest_halt_poll_ns {ns}"),
            None => "haltpoll".to_owned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(driver: Option<&str>, poll_ns: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        if let Some(driver) = driver {
            write("devices/system/cpu/cpuidle/current_driver", driver);
        }
        if let Some(ns) = poll_ns {
            write("module/haltpoll/parameters/guest_halt_poll_ns", ns);
        }
        dir
    }

    #[test]
    fn the_driver_and_the_halt_poll_limit_are_reported() {
        let read = |driver, ns| cpu_idle_under(sys(driver, ns).path());
        assert_eq!(read(None, None), None);
        assert_eq!(
            read(Some("intel_idle\n"), None).as_deref(),
            Some("intel_idle")
        );
        assert_eq!(
            read(Some("haltpoll\n"), Some("200000\n")).as_deref(),
            Some("haltpoll, guest_halt_poll_ns 200000")
        );
        let halting = read(Some("haltpoll\n"), Some("0\n")).expect("reported");
        assert!(halting.starts_with("haltpoll, guest_halt_poll_ns 0 (an idle vCPU halts"));
        assert_eq!(read(Some("haltpoll"), None).as_deref(), Some("haltpoll"));
    }
}
