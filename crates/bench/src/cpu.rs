//! CPU time read from /proc, so a bench can say what a unit of work cost: the whole
//! machine (Postgres included), and the processes it can name.

use anyhow::{Context, Result};

/// Linux fixes USER_HZ, the unit of /proc's CPU times, at 100 for userspace.
const TICKS_PER_SEC: f64 = 100.0;

/// Non-idle CPU time of the whole machine so far (all cores summed), in seconds: user,
/// nice, system, irq and softirq of /proc/stat's `cpu` line. Idle, iowait and steal
/// (time the hypervisor gave elsewhere) are not work done here.
fn machine_secs() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().find(|l| l.starts_with("cpu ")).context("no `cpu` line in /proc/stat")?;
    let f: Vec<u64> =
        line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().context("/proc/stat `cpu` line")?;
    let at = |i: usize| f.get(i).copied().context("short /proc/stat `cpu` line");
    Ok((at(0)? + at(1)? + at(2)? + at(5)? + at(6)?) as f64 / TICKS_PER_SEC)
}

/// CPU time (user + system) used so far by process `pid` (`"self"` for this one), in
/// seconds.
fn process_secs(pid: &str) -> Result<f64> {
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

/// CPU seconds used up to a moment: the machine's (all of it, Postgres included), this
/// process's, and that of the other processes a bench names (its spawned workers). Two
/// marks give a stretch of work's share: `later.since(&earlier)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    pub machine: f64,
    pub this_process: f64,
    pub others: f64,
}

impl Mark {
    /// Reads /proc now; `others` are the pids whose CPU is summed into `others`.
    pub fn take(others: &[u32]) -> Result<Self> {
        let mut in_others = 0.0;
        for pid in others {
            in_others += process_secs(&pid.to_string())?;
        }
        Ok(Self { machine: machine_secs()?, this_process: process_secs("self")?, others: in_others })
    }

    /// The CPU used between `earlier` and this mark.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            machine: self.machine - earlier.machine,
            this_process: self.this_process - earlier.this_process,
            others: self.others - earlier.others,
        }
    }

    /// Each figure divided over `units` of work and scaled (1e6 for microseconds per
    /// unit, 1e3 for milliseconds).
    pub fn per_unit(&self, units: u64, scale: f64) -> Self {
        let per = |secs: f64| secs * scale / units.max(1) as f64;
        Self { machine: per(self.machine), this_process: per(self.this_process), others: per(self.others) }
    }

    /// Milliseconds per unit over `units`, as JSON: `machine`, the named processes as
    /// `others_key`, this process as `this_key`, and `postgres_and_rest` (the machine's
    /// less both: Postgres, and whatever else ran beside the bench).
    pub fn split_ms(&self, units: i64, others_key: &str, this_key: &str) -> serde_json::Value {
        let per = self.per_unit(units.max(0) as u64, 1e3);
        let ms = |x: f64| crate::round_to(x, 2);
        serde_json::json!({
            "machine": ms(per.machine),
            others_key: ms(per.others),
            this_key: ms(per.this_process),
            "postgres_and_rest": ms(per.machine - per.others - per.this_process),
        })
    }
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

    #[test]
    fn a_mark_splits_a_stretch_of_work_and_divides_it_per_unit() {
        let me = std::process::id();
        let before = Mark::take(&[me]).unwrap();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(100) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let used = Mark::take(&[me]).unwrap().since(&before);
        // /proc counts in 10 ms ticks: 100 ms of spinning shows as at least 50 of them.
        assert!(used.this_process >= 0.05, "{used:?}");
        // Named as an other, this process is read a moment before it is read as itself,
        // while the harness's other test threads run: a tick may fall in between.
        assert!((used.others - used.this_process).abs() <= 0.02, "naming this process as an other counts it the same: {used:?}");
        assert!(used.machine >= used.this_process - 0.02, "{used:?}");
        let per = used.per_unit(4, 1e3);
        assert!((per.this_process - used.this_process * 250.0).abs() < 1e-9, "{per:?}");
        assert_eq!(Mark::take(&[u32::MAX]).unwrap_err().to_string(), format!("reading /proc/{}/stat", u32::MAX));
    }

    #[test]
    fn a_split_names_its_parts_and_the_rest_is_what_they_leave() {
        let used = Mark { machine: 3.0, this_process: 0.5, others: 1.0 };
        let split = used.split_ms(1000, "workers", "server");
        assert_eq!(split, serde_json::json!({ "machine": 3.0, "workers": 1.0, "server": 0.5, "postgres_and_rest": 1.5 }));
        assert_eq!(used.split_ms(0, "w", "s")["machine"], 3000.0, "no units counts as one");
    }
}
