//! A service stopped with SIGTERM under load, and started again: how long it took to stop
//! (against its drain bound), whether it exited cleanly, and how many messages it had applied
//! were delivered again to the process that replaced it. The count comes from the two
//! processes' own words: a consumer logs, when it stops, the offset after the last message it
//! applied in each partition (`consumer stopped ... applied=users.commands/0:15,...`), and the
//! first record it reads from each partition (`resuming ... topic=... partition=... offset=...`).

use std::collections::BTreeMap;
use std::time::Duration;

/// `SHUTDOWN_DRAIN_SECS` of the stack's services: the longest a SIGTERM may take to stop one.
pub const DRAIN: Duration = Duration::from_secs(20);

/// Per topic and partition, an offset.
pub type Positions = BTreeMap<(String, i32), i64>;

/// How one SIGTERM went.
#[derive(Debug, Clone)]
pub struct StopCheck {
    /// From SIGTERM to the process's end.
    pub took: Duration,
    /// Exit code 0.
    pub clean: bool,
    /// Where its consumers were when it stopped: the offset after the last message applied.
    pub applied: Positions,
    /// Messages it had applied that its successor read again (None until counted).
    pub redelivered: Option<usize>,
}

impl StopCheck {
    /// What breaks the promise: a stop past the drain bound or not clean, a message redelivered.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.took > DRAIN {
            failures.push(format!("took {:.1} s to stop, past its drain bound of {DRAIN:?}", self.took.as_secs_f64()));
        }
        if !self.clean {
            failures.push("did not exit with code 0".to_owned());
        }
        match self.redelivered {
            Some(0) => {}
            Some(n) => failures.push(format!("{n} messages it had applied were delivered again after its restart")),
            None => failures.push("redeliveries not counted".to_owned()),
        }
        failures
    }
}

/// The value of `name=` in a text log line (values logged with `%` have no spaces).
fn field<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let marker = format!(" {name}=");
    let start = line.find(&marker)? + marker.len();
    line[start..].split_whitespace().next()
}

/// Where each consumer of the process had applied up to when it stopped.
pub fn applied(logs: &[String]) -> Positions {
    let mut positions = Positions::new();
    for line in logs.iter().filter(|l| l.contains("consumer stopped")) {
        let Some(applied) = field(line, "applied") else { continue };
        for part in applied.split(',').filter(|p| *p != "none") {
            let parsed = part.rsplit_once(':').and_then(|(tp, next)| {
                let (topic, partition) = tp.rsplit_once('/')?;
                Some(((topic.to_owned(), partition.parse().ok()?), next.parse().ok()?))
            });
            if let Some((key, next)) = parsed {
                positions.insert(key, next);
            }
        }
    }
    positions
}

/// The first offset the process read from each partition.
pub fn resumed(logs: &[String]) -> Positions {
    let mut positions = Positions::new();
    for line in logs.iter().filter(|l| l.contains("resuming")) {
        let topic = field(line, "topic");
        let partition = field(line, "partition").and_then(|p| p.parse().ok());
        let offset = field(line, "offset").and_then(|o| o.parse().ok());
        if let (Some(topic), Some(partition), Some(offset)) = (topic, partition, offset) {
            positions.entry((topic.to_owned(), partition)).or_insert(offset);
        }
    }
    positions
}

/// Messages applied before the stop and read again after it: in each partition, those from
/// where the successor resumed up to where the predecessor had applied. (A partition the
/// successor did not read from had nothing left to read: nothing was read again.)
pub fn redelivered(applied: &Positions, resumed: &Positions) -> usize {
    applied
        .iter()
        .filter_map(|(partition, &next)| resumed.get(partition).map(|&first| (next - first).max(0)))
        .map(|n| usize::try_from(n).unwrap_or(0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn counts_what_was_read_again_from_the_two_processes_logs() {
        let before = lines(
            "2026-11-24T10:00:00.000000Z  INFO platform::kafka::consumer: resuming: the first record this process \
             reads from the partition group=user-service topic=users.commands partition=0 offset=0\n\
             2026-11-24T10:00:09.000000Z  INFO platform::kafka::exactly_once: consumer stopped; every applied batch \
             is committed group=user-service applied=users.commands/0:15,users.commands/3:40",
        );
        let applied = applied(&before);
        assert_eq!(applied.len(), 2);
        assert_eq!(applied[&("users.commands".to_owned(), 3)], 40);

        let after = |first_of_3: i64| {
            lines(&format!(
                "x  INFO platform::kafka::consumer: resuming: the first record this process reads from the partition \
                 group=user-service topic=users.commands partition=3 offset={first_of_3}\n\
                 x  INFO platform::kafka::consumer: resuming: the first record this process reads from the partition \
                 group=user-service topic=users.commands partition=3 offset=7"
            ))
        };
        assert_eq!(redelivered(&applied, &resumed(&after(40))), 0, "resumed right after the last applied");
        assert_eq!(redelivered(&applied, &resumed(&after(35))), 5, "35..40 read again");
        assert_eq!(
            redelivered(&applied, &resumed(&after(52))),
            0,
            "nothing read twice (messages in between unapplied)"
        );

        let nothing =
            lines("x  INFO platform::kafka::consumer: consumer stopped; offsets committed group=g applied=none");
        assert!(super::applied(&nothing).is_empty());
    }

    #[test]
    fn a_stop_past_the_bound_unclean_or_with_a_redelivery_fails() {
        let check = StopCheck { took: DRAIN / 2, clean: true, applied: Positions::new(), redelivered: Some(0) };
        assert!(check.failures().is_empty());
        assert_eq!(StopCheck { took: DRAIN * 2, ..check.clone() }.failures().len(), 1);
        assert_eq!(StopCheck { clean: false, ..check.clone() }.failures().len(), 1);
        assert_eq!(StopCheck { redelivered: Some(3), ..check.clone() }.failures().len(), 1);
        assert_eq!(StopCheck { redelivered: None, ..check }.failures().len(), 1);
    }
}
