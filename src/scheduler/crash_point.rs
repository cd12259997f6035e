//! A deliberate `kill -9` of this process at a chosen point of its conversation with the
//! master, for fault tests (`--crash-at`, `SHARDEX_CRASH_AT`).
//!
//! The points that matter for exactly-once sit between a commit and the call it decided: the
//! owner commits a batch before it hands the batch's calls to the call sender, so `before:ACCEPT`
//! dies with a launch recorded but never offered to Mesos, `before:ACKNOWLEDGE` with an
//! update's effect recorded but the update unacknowledged, and `after:RECONCILE` in the middle
//! of a reconciliation (the master accepted it; its answers may or may not have been taken). Random `kill -9` from outside rarely
//! lands in those windows; this lands in them every time.
//!
//! `<before|after>:<CALL>[#n]`: the `n`-th call of that type (default the first) since start.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use shardex_mesos::proto::v1::scheduler::{Call, call};

/// Either side of a call's HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// After the commit that decided the call, before its request leaves.
    Before,
    /// After the master accepted the call (202).
    After,
}

#[derive(Debug)]
struct CrashPoint {
    moment: Moment,
    call: call::Type,
    nth: u32,
    seen: AtomicU32,
}

static ARMED: OnceLock<CrashPoint> = OnceLock::new();

/// A `--crash-at` value that is not `<before|after>:<CALL>[#n]`.
#[derive(Debug, thiserror::Error)]
#[error(
    "--crash-at {spec:?}: {why}; write `before:<CALL>` or `after:<CALL>`, optionally `#n` for \
     the n-th such call (e.g. `before:ACCEPT`, `after:RECONCILE#2`)"
)]
pub struct CrashPointError {
    spec: String,
    why: String,
}

fn parse(spec: &str) -> Result<CrashPoint, CrashPointError> {
    let error = |why: String| CrashPointError {
        spec: spec.to_owned(),
        why,
    };
    let (moment, rest) = spec
        .split_once(':')
        .ok_or_else(|| error("no `:` after the moment".into()))?;
    let moment = match moment {
        "before" => Moment::Before,
        "after" => Moment::After,
        other => return Err(error(format!("unknown moment {other:?}"))),
    };
    let (name, nth) = match rest.split_once('#') {
        Some((name, n)) => {
            let nth = n
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| error(format!("{n:?} is not a count from 1")))?;
            (name, nth)
        }
        None => (rest, 1),
    };
    let call = call::Type::from_str_name(name)
        .filter(|t| *t != call::Type::Unknown)
        .ok_or_else(|| error(format!("{name:?} is not a scheduler call type")))?;
    if call == call::Type::Subscribe {
        // The driver sends SUBSCRIBE itself; only the calls the owner decides pass a point.
        return Err(error(
            "SUBSCRIBE is not a call the scheduler decides; it has no crash point".into(),
        ));
    }
    Ok(CrashPoint {
        moment,
        call,
        nth,
        seen: AtomicU32::new(0),
    })
}

/// Arms the crash point for the life of this process (once; a second arming is ignored).
pub fn arm(spec: &str) -> Result<(), CrashPointError> {
    let point = parse(spec)?;
    tracing::warn!(
        crash_at = spec,
        "armed: this process will kill itself (SIGKILL) at that point"
    );
    let _ = ARMED.set(point);
    Ok(())
}

/// Kills this process with SIGKILL if `call` at `moment` is the armed point.
pub(crate) fn reached(moment: Moment, call: &Call) {
    let Some(point) = ARMED.get() else { return };
    if point.moment != moment || call.r#type != Some(point.call as i32) {
        return;
    }
    // `Before` and `After` of one call type are never both armed, so each call counts once.
    let n = point.seen.fetch_add(1, Ordering::SeqCst) + 1;
    if n == point.nth {
        let name = point.call.as_str_name();
        tracing::error!(
            call = name,
            occurrence = n,
            "--crash-at reached: killing this process"
        );
        // As `kill -9` from outside: no destructor, no flush of anything but this line.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_and_bad_ones_name_what_is_wrong() {
        let p = parse("before:ACCEPT").unwrap();
        assert_eq!(
            (p.moment, p.call, p.nth),
            (Moment::Before, call::Type::Accept, 1)
        );
        let p = parse("after:RECONCILE#3").unwrap();
        assert_eq!(
            (p.moment, p.call, p.nth),
            (Moment::After, call::Type::Reconcile, 3)
        );
        for (spec, why) in [
            ("ACCEPT", "no `:` after the moment"),
            ("during:ACCEPT", "unknown moment \"during\""),
            ("before:accept", "\"accept\" is not a scheduler call type"),
            ("before:UNKNOWN", "\"UNKNOWN\" is not a scheduler call type"),
            (
                "after:SUBSCRIBE",
                "SUBSCRIBE is not a call the scheduler decides; it has no crash point",
            ),
            ("before:ACCEPT#0", "\"0\" is not a count from 1"),
            ("before:ACCEPT#x", "\"x\" is not a count from 1"),
        ] {
            let message = parse(spec).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("--crash-at {spec:?}: {why};")),
                "{message}"
            );
        }
    }
}
