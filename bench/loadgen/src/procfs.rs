//! CPU and memory of the processes under test, read from /proc.
//!
//! A proxy can be several processes (nginx: a master and its workers), so every figure is
//! summed over a root PID and all its descendants: CPU is utime+stime, memory is VmRSS.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// One reading of a process tree.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// utime+stime, in clock ticks.
    pub cpu_ticks: u64,
    /// VmRSS summed, in KiB.
    pub rss_kib: u64,
    /// How many processes the tree had.
    pub procs: usize,
}

/// Clock ticks per second, for turning utime+stime into seconds.
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (ppid, utime+stime) from /proc/PID/stat.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and parentheses.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15), 1-based in proc(5).
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn vm_rss_kib(pid: u32) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The roots and all their descendants that exist now.
pub fn tree(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, _)) = stat(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out: Vec<u32> = Vec::new();
    let mut todo: Vec<u32> = roots.to_vec();
    // Bounded: a pid is visited once, and /proc holds finitely many.
    while let Some(p) = todo.pop() {
        if out.contains(&p) {
            continue;
        }
        out.push(p);
        if let Some(c) = children.get(&p) {
            todo.extend(c);
        }
    }
    out
}

/// Reads the usage of the given processes.
pub fn usage(pids: &[u32]) -> Usage {
    let mut u = Usage::default();
    for &p in pids {
        if let Some((_, cpu)) = stat(p) {
            u.cpu_ticks += cpu;
            u.rss_kib += vm_rss_kib(p);
            u.procs += 1;
        }
    }
    u
}

/// What a sampler saw between its start and its end.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    /// CPU seconds used while sampling.
    pub cpu_s: f64,
    /// RSS when sampling started (KiB).
    pub rss_start_kib: u64,
    /// Highest RSS seen (KiB).
    pub rss_peak_kib: u64,
    /// RSS when sampling ended (KiB).
    pub rss_end_kib: u64,
    /// Processes in the tree at the start.
    pub procs: usize,
}

/// Samples a process tree's RSS on a thread of its own until finished.
pub struct Sampler {
    pids: Vec<u32>,
    start: Usage,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Sampler {
    /// Starts sampling the trees under `roots` every `period`; no roots gives an empty report.
    pub fn start(roots: &[u32], period: Duration) -> Sampler {
        let pids = if roots.is_empty() {
            Vec::new()
        } else {
            tree(roots)
        };
        let start = usage(&pids);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = (!pids.is_empty()).then(|| {
            let (pids, stop) = (pids.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut peak = 0;
                // Bounded by the caller's finish(): the client's own deadline ends it.
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(usage(&pids).rss_kib);
                    std::thread::sleep(period);
                }
                peak
            })
        });
        Sampler {
            pids,
            start,
            stop,
            thread,
        }
    }

    /// Stops sampling and reports.
    pub fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0);
        let end = usage(&self.pids);
        Report {
            cpu_s: end.cpu_ticks.saturating_sub(self.start.cpu_ticks) as f64 / ticks_per_sec(),
            rss_start_kib: self.start.rss_kib,
            rss_peak_kib: peak.max(end.rss_kib).max(self.start.rss_kib),
            rss_end_kib: end.rss_kib,
            procs: self.pids.len(),
        }
    }
}

/// CPU seconds this process has used so far.
pub fn self_cpu_s() -> f64 {
    stat(std::process::id())
        .map(|(_, t)| t as f64 / ticks_per_sec())
        .unwrap_or(0.0)
}

/// CPU seconds used by this process's children that have been waited for.
pub fn children_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    if rc != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The 1-minute load average: how busy the machine was, as context for a result.
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_itself() {
        let me = std::process::id();
        let u = usage(&tree(&[me]));
        assert!(u.procs >= 1);
        assert!(u.rss_kib > 0);
    }
}
