//! Elastic-Job-Cloud's identifier formats, kept for operators' tooling, and the naming rules that
//! make them parse back.
//!
//! - task id: `{job}@-@{item}@-@{READY|FAILOVER}@-@{agentId}@-@{uuid}`
//! - task name: the task id without its uuid
//! - executor id: `{app}@-@{agentId}` for an app's first configuration revision, and
//!   `{app}@-@{agentId}@-@r{revision}` for later ones. Mesos demands one identical `ExecutorInfo`
//!   per executor id, so a changed app configuration must run in executors with new ids; the
//!   first revision keeps Elastic-Job's exact two-part form.
//!
//! Names never contain the delimiter, so splitting is exact (Elastic-Job rewrote ids with regular
//! expressions; we never do).

use std::fmt;

/// The delimiter between the parts of every id.
pub const DELIMITER: &str = "@-@";
/// Longest job or app name. Keeps task ids well below Mesos' 255-character bound.
pub const MAX_NAME_LEN: usize = 100;

/// Why a job or app name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is {0} characters long; at most {MAX_NAME_LEN} are allowed")]
    TooLong(usize),
    #[error("contains the id delimiter '@-@'")]
    Delimiter,
    #[error("contains '{0}'; names may not contain '/' or '\\'")]
    PathSeparator(char),
    #[error("contains a control character")]
    Control,
    #[error("is '.' or '..', which Mesos refuses as an id")]
    Dots,
    #[error("has leading or trailing whitespace")]
    Whitespace,
}

/// Checks a job or app name.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_LEN {
        return Err(NameError::TooLong(chars));
    }
    if name.contains(DELIMITER) {
        return Err(NameError::Delimiter);
    }
    if let Some(c) = name.chars().find(|c| *c == '/' || *c == '\\') {
        return Err(NameError::PathSeparator(c));
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    if name.trim() != name {
        return Err(NameError::Whitespace);
    }
    Ok(())
}

/// Whether a task runs a cron/trigger run or re-runs a failed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionKind {
    Ready,
    Failover,
}

impl ExecutionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionKind::Ready => "READY",
            ExecutionKind::Failover => "FAILOVER",
        }
    }
}

/// A parsed task id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskId {
    pub job: String,
    pub item: u32,
    pub kind: ExecutionKind,
    pub agent_id: String,
    pub uuid: String,
}

/// Why a string is not a Shardex task or executor id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{id}' is not a Shardex {what}: {reason}")]
pub struct IdError {
    pub id: String,
    pub what: &'static str,
    pub reason: String,
}

impl TaskId {
    /// A new id with a fresh uuid.
    pub fn new(job: &str, item: u32, kind: ExecutionKind, agent_id: &str) -> TaskId {
        TaskId {
            job: job.to_owned(),
            item,
            kind,
            agent_id: agent_id.to_owned(),
            uuid: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The Mesos task name: the id without its uuid.
    pub fn name(&self) -> String {
        format!(
            "{job}{d}{item}{d}{kind}{d}{agent}",
            job = self.job,
            item = self.item,
            kind = self.kind.as_str(),
            agent = self.agent_id,
            d = DELIMITER
        )
    }

    pub fn parse(id: &str) -> Result<TaskId, IdError> {
        let error = |reason: String| IdError {
            id: id.to_owned(),
            what: "task id",
            reason,
        };
        let parts: Vec<&str> = id.split(DELIMITER).collect();
        let [job, item, kind, agent, uuid] = parts[..] else {
            return Err(error(format!(
                "it has {} '@-@'-separated parts, expected 5 (job, item, READY|FAILOVER, agent, uuid)",
                parts.len()
            )));
        };
        validate_name(job).map_err(|e| error(format!("job name {e}")))?;
        let item = item
            .parse()
            .map_err(|_| error(format!("sharding item '{item}' is not a number")))?;
        let kind = match kind {
            "READY" => ExecutionKind::Ready,
            "FAILOVER" => ExecutionKind::Failover,
            other => return Err(error(format!("'{other}' is neither READY nor FAILOVER"))),
        };
        if agent.is_empty() || uuid.is_empty() {
            return Err(error("agent id or uuid is empty".into()));
        }
        Ok(TaskId {
            job: job.to_owned(),
            item,
            kind,
            agent_id: agent.to_owned(),
            uuid: uuid.to_owned(),
        })
    }

    /// The task's name and its full id (the name, the delimiter, the uuid), the name formatted
    /// once for both (placement builds both for every task it launches).
    pub fn name_and_id(&self) -> (String, String) {
        let name = self.name();
        let mut id = String::with_capacity(name.len() + DELIMITER.len() + self.uuid.len());
        id.push_str(&name);
        id.push_str(DELIMITER);
        id.push_str(&self.uuid);
        (name, id)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name_and_id().1)
    }
}

/// A parsed executor id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorId {
    pub app: String,
    pub agent_id: String,
    /// The app's configuration revision, starting at 1.
    pub revision: u64,
}

impl ExecutorId {
    pub fn parse(id: &str) -> Result<ExecutorId, IdError> {
        let error = |reason: String| IdError {
            id: id.to_owned(),
            what: "executor id",
            reason,
        };
        let parts: Vec<&str> = id.split(DELIMITER).collect();
        let (app, agent, revision) = match parts[..] {
            [app, agent] => (app, agent, 1),
            [app, agent, revision] => {
                let number = revision
                    .strip_prefix('r')
                    .and_then(|n| n.parse::<u64>().ok())
                    .filter(|n| *n >= 2)
                    .ok_or_else(|| error(format!("revision '{revision}' is not r2, r3, …")))?;
                (app, agent, number)
            }
            _ => {
                return Err(error(format!(
                    "it has {} '@-@'-separated parts, expected 2 or 3",
                    parts.len()
                )));
            }
        };
        validate_name(app).map_err(|e| error(format!("app name {e}")))?;
        if agent.is_empty() {
            return Err(error("agent id is empty".into()));
        }
        Ok(ExecutorId {
            app: app.to_owned(),
            agent_id: agent.to_owned(),
            revision,
        })
    }
}

impl fmt::Display for ExecutorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{DELIMITER}{}", self.app, self.agent_id)?;
        if self.revision > 1 {
            write!(f, "{DELIMITER}r{}", self.revision)?;
        }
        Ok(())
    }
}

/// The key of one sharding item of one job, as used in the store: `{job}@-@{item}`
/// (Elastic-Job's MetaInfo for a single item).
pub fn item_key(job: &str, item: u32) -> String {
    format!("{job}{DELIMITER}{item}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_round_trip_in_elastic_job_format() {
        let id = TaskId::new("orders", 2, ExecutionKind::Failover, "e149-S0");
        let text = id.to_string();
        assert!(text.starts_with("orders@-@2@-@FAILOVER@-@e149-S0@-@"));
        assert_eq!(id.name(), "orders@-@2@-@FAILOVER@-@e149-S0");
        assert_eq!(TaskId::parse(&text).unwrap(), id);
        assert_eq!(text.len(), id.name().len() + 3 + 36);
    }

    #[test]
    fn malformed_task_ids_say_why() {
        let e = TaskId::parse("a@-@1@-@READY@-@S0").unwrap_err();
        assert!(e.to_string().contains("4 '@-@'-separated parts"), "{e}");
        let e = TaskId::parse("a@-@x@-@READY@-@S0@-@u").unwrap_err();
        assert!(e.to_string().contains("'x' is not a number"), "{e}");
        let e = TaskId::parse("a@-@1@-@LATER@-@S0@-@u").unwrap_err();
        assert!(e.to_string().contains("neither READY nor FAILOVER"), "{e}");
        assert!(TaskId::parse("no-such-task").is_err());
    }

    #[test]
    fn executor_ids_carry_the_revision_after_the_first() {
        let first = ExecutorId {
            app: "billing".into(),
            agent_id: "S0".into(),
            revision: 1,
        };
        assert_eq!(first.to_string(), "billing@-@S0");
        assert_eq!(ExecutorId::parse("billing@-@S0").unwrap(), first);
        let third = ExecutorId {
            revision: 3,
            ..first
        };
        assert_eq!(third.to_string(), "billing@-@S0@-@r3");
        assert_eq!(ExecutorId::parse("billing@-@S0@-@r3").unwrap(), third);
        assert!(ExecutorId::parse("billing@-@S0@-@r1").is_err());
        assert!(ExecutorId::parse("billing").is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("hello-shards_1.v2").is_ok());
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name("a@-@b"), Err(NameError::Delimiter));
        assert_eq!(validate_name("a/b"), Err(NameError::PathSeparator('/')));
        assert_eq!(validate_name("a\\b"), Err(NameError::PathSeparator('\\')));
        assert_eq!(validate_name("a\nb"), Err(NameError::Control));
        assert_eq!(validate_name(".."), Err(NameError::Dots));
        assert_eq!(validate_name(" a"), Err(NameError::Whitespace));
        assert_eq!(
            validate_name(&"x".repeat(101)),
            Err(NameError::TooLong(101))
        );
        assert!(validate_name(&"x".repeat(100)).is_ok());
    }

    #[test]
    fn item_keys_round_trip() {
        assert_eq!(item_key("a-b", 7), "a-b@-@7");
    }
}
