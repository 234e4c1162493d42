//! CPU time read from /proc, so a bench can say what a unit of work cost: the whole
//! machine (Postgres included), and the processes it can name.

use anyhow::{Context, Result};

/// Linux fixes USER_HZ, the unit of /proc's CPU times, at 100 for userspace.
const TICKS_PER_SEC: f64 = 100.0;

/// Non-idle CPU time of the whole machine so far (all cores summed), in seconds: user,
/// nice, system, irq and softirq of /proc/stat's `cpu` line. Idle, iowait and steal
/// (time the hypervisor gave elsewhere) are not work done here.
pub fn machine_secs() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().find(|l| l.starts_with("cpu ")).context("no `cpu` line in /proc/stat")?;
    let f: Vec<u64> =
        line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().context("/proc/stat `cpu` line")?;
    let at = |i: usize| f.get(i).copied().context("short /proc/stat `cpu` line");
    Ok((at(0)? + at(1)? + at(2)? + at(5)? + at(6)?) as f64 / TICKS_PER_SEC)
}

/// CPU time (user + system) used so far by process `pid` (`"self"` for this one), in
/// seconds.
pub fn process_secs(pid: &str) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').with_context(|| format!("malformed {path}"))?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        f.get(i).with_context(|| format!("short {path}"))?.parse().with_context(|| path.to_string())
    };
    Ok((field(11)? + field(12)?) as f64 / TICKS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_the_machine_have_used_cpu_and_it_only_grows() {
        let (m0, p0) = (machine_secs().unwrap(), process_secs("self").unwrap());
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let (m1, p1) = (machine_secs().unwrap(), process_secs("self").unwrap());
        assert!(m0 > 0.0 && m1 >= m0, "machine: {m0} then {m1}");
        assert!(p1 >= p0 && p1 > 0.0, "process: {p0} then {p1}");
        assert!(m1 - m0 >= p1 - p0 - 0.02, "the machine's time includes this process's");
    }
}
