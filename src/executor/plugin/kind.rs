//! [`JobKind`] and the set of kinds a plugin declares, [`JobKinds`].

use std::fmt;

use shardex_job::abi;

/// A job kind a plugin can implement (script jobs need no plugin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// `execute` once per run.
    Simple,
    /// `fetch_data` + `process_data`, once or streaming.
    Dataflow,
}

impl JobKind {
    /// The kind's bit in the descriptor.
    pub fn bit(self) -> u32 {
        match self {
            JobKind::Simple => abi::KIND_SIMPLE,
            JobKind::Dataflow => abi::KIND_DATAFLOW,
        }
    }

    /// Lower-case name, as in configuration.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Simple => "simple",
            JobKind::Dataflow => "dataflow",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kinds a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobKinds(u32);

impl JobKinds {
    pub(crate) fn from_bits(bits: u32) -> Self {
        JobKinds(bits & abi::KIND_ALL)
    }

    /// Whether `kind` is among them.
    pub fn contains(self, kind: JobKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The kinds, simple first.
    pub fn iter(self) -> impl Iterator<Item = JobKind> {
        [JobKind::Simple, JobKind::Dataflow]
            .into_iter()
            .filter(move |k| self.contains(*k))
    }

    /// The raw bitmask.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Display for JobKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(JobKind::name).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}
