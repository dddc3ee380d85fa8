//! The process's descriptor table, sized once at start.
//!
//! Linux grows a process's table of file descriptors by doubling it when a new descriptor does
//! not fit (64, 128, 256, …). In a process with more than one thread, every growth waits for
//! an RCU grace period (`expand_fdtable` calls `synchronize_rcu`), and each thread that opens a
//! descriptor meanwhile waits for that growth. On our 2-core test machine one growth stopped
//! both worker threads for 15 to 23 ms: a fresh proxy (256 slots) met by 200 streams at once
//! (about 400 descriptors) grew its table mid-burst, and sent nothing for that long. nginx,
//! whose workers have one thread each, never waits there.
//!
//! [`reserve`] grows the table to its working size before the worker threads exist, where a
//! growth waits for nothing. The table never shrinks, so later bursts find room.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The most slots reserved: 65,536 descriptors, about half a MiB of kernel memory.
pub const MAX_RESERVED: u64 = 1 << 16;

/// Grows the descriptor table to hold as many descriptors as the open-file limit allows, up
/// to [`MAX_RESERVED`]. Returns the slots now reserved, or why none were.
pub fn reserve() -> Result<u64, String> {
    let limit = open_file_limit()?;
    let slots = limit.min(MAX_RESERVED);
    if slots < 2 {
        return Ok(slots);
    }
    // Any descriptor will do: duplicating it to the highest slot makes the kernel size the
    // table for that slot. The duplicate is closed at once; the table stays.
    let probe = File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
    let highest = libc::c_int::try_from(slots - 1).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new descriptor or -1; the new
    // one is owned by the `OwnedFd` below and closed when it drops.
    let dup = unsafe { libc::fcntl(probe.as_raw_fd(), libc::F_DUPFD_CLOEXEC, highest) };
    if dup < 0 {
        return Err(format!(
            "cannot reserve {slots} descriptor slots: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `dup` was just returned by fcntl and nothing else owns it.
    drop(unsafe { OwnedFd::from_raw_fd(dup) });
    Ok(slots)
}

/// The soft limit on open files (`ulimit -n`).
fn open_file_limit() -> Result<u64, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's size as the kernel reports it.
    fn table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("FDSize")
    }

    #[test]
    fn the_table_holds_the_reserved_slots_and_the_probe_is_closed() {
        let slots = reserve().expect("reserve");
        assert_eq!(slots, open_file_limit().expect("limit").min(MAX_RESERVED));
        let size = table_size();
        assert!(size >= slots, "table {size} < {slots}");
        // The duplicate that sized the table sat in its last slot, and is gone.
        let last = format!("/proc/self/fd/{}", slots - 1);
        assert!(std::fs::symlink_metadata(&last).is_err(), "{last} is open");
    }
}
