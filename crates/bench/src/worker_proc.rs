//! A `pgwa run` worker process a loopback benchmark spawned, possibly under a wrapper
//! (`BENCH_WORKER_WRAP`, e.g. strace or heaptrack). The figures and the signals go to
//! the worker itself, not to the wrapper, and nothing it started outlives the run: a
//! worker left behind would take leases in the next run's scratch database of the same
//! name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub struct WorkerProc {
    child: Child,
    /// The pgwa binary, to tell the worker from its wrapper in the process tree.
    exe: PathBuf,
}

impl WorkerProc {
    pub fn spawn(mut cmd: Command, exe: PathBuf) -> Result<Self> {
        Ok(Self { child: cmd.spawn().context("spawning pgwa run")?, exe })
    }

    /// The worker's process id: the spawned process, or under a wrapper the descendant
    /// that runs the pgwa binary (the spawned one until it has started).
    pub fn pid(&self) -> u32 {
        let exe_of = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        tree(self.child.id()).into_iter().find(|&pid| exe_of(pid).as_ref() == Some(&self.exe)).unwrap_or(self.child.id())
    }

    /// Resident set size in KiB (VmRSS) of the worker.
    pub fn rss_kib(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS in /proc/<pid>/status")?;
        line.split_whitespace().nth(1).context("VmRSS value")?.parse().context("VmRSS value")
    }

    /// SIGTERM to the worker, then waits for it and its wrapper to exit (the worker
    /// releases its sessions); returns how long the shutdown took.
    pub async fn terminate(mut self) -> Result<Duration> {
        let start = Instant::now();
        let worker = self.pid();
        kill(Pid::from_raw(worker as i32), Signal::SIGTERM).context("SIGTERM to the worker")?;
        loop {
            // A wrapper's worker is not this process's child: kill with no signal tells
            // whether it still runs (an exited one is reaped by init).
            let worker_gone = worker == self.child.id() || kill(Pid::from_raw(worker as i32), None).is_err();
            if let Some(status) = self.child.try_wait()?
                && worker_gone
            {
                if !status.success() {
                    bail!("the worker exited with {status} after SIGTERM");
                }
                return Ok(start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("the worker did not exit within 120 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Descendants first: once the wrapper is gone they are init's and out of reach.
            for pid in tree(self.child.id()).into_iter().rev() {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }
}

/// `root` and its descendants, parents before children, from /proc's parent links.
fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        out.extend(children.get(&out[i]).into_iter().flatten());
        i += 1;
    }
    out
}

/// The parent pid in /proc/<pid>/stat (field 4; the command name before it may hold
/// spaces and parentheses, so fields are counted from the last `)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sh -c 'sleep 600 & wait'` stands for a wrapper running a worker (`sleep` as the
    /// worker's binary); returns it once the sleep runs, and the sleep's pid.
    fn wrapped_sleep(script: &str) -> (WorkerProc, u32) {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        let w = WorkerProc::spawn(cmd, std::fs::canonicalize("/bin/sleep").unwrap()).unwrap();
        let started = Instant::now();
        while w.pid() == w.child.id() {
            assert!(started.elapsed() < Duration::from_secs(10), "sh never started its sleep");
            std::thread::sleep(Duration::from_millis(10));
        }
        let sleeper = w.pid();
        assert_eq!(parent_of(sleeper), Some(w.child.id()));
        (w, sleeper)
    }

    fn gone(pid: u32) -> bool {
        // Killed but unreaped (no init reaps in some containers) counts as gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z"))
    }

    #[tokio::test]
    async fn terminate_signals_the_wrapped_worker_and_waits_for_both() {
        let (w, sleeper) = wrapped_sleep("sleep 600 & wait; exit 0");
        let took = w.terminate().await.unwrap();
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert!(gone(sleeper));
    }

    #[test]
    fn drop_kills_the_wrapped_worker_too() {
        let (w, sleeper) = wrapped_sleep("sleep 600 & wait");
        drop(w);
        let started = Instant::now();
        while !gone(sleeper) {
            assert!(started.elapsed() < Duration::from_secs(10), "the wrapped worker outlived the drop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn pid_is_the_spawned_process_when_nothing_runs_the_pgwa_binary() {
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        let w = WorkerProc::spawn(cmd, PathBuf::from("/nonexistent")).unwrap();
        assert_eq!(w.pid(), w.child.id());
    }
}
