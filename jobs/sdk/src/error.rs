//! [`JobError`]: the error a job returns, which crosses to the executor as a message.

use std::fmt;

/// A job's error: a human-readable message that ends up in the task's status update.
///
/// Any `std::error::Error` converts into it with `?` (the message includes the error's sources),
/// and [`JobError::new`] makes one from text. It deliberately does not implement
/// `std::error::Error` itself, so that the blanket conversion can exist.
pub struct JobError {
    message: String,
}

impl JobError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        JobError {
            message: message.into(),
        }
    }

    /// The message the executor will see.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for JobError {
    fn from(error: E) -> Self {
        // Keep the whole chain: "cannot open x: permission denied" beats "cannot open x".
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        JobError { message }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JobError").field(&self.message).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot read input")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn conversion_keeps_the_source_chain() {
        let error = JobError::from(Outer(std::io::Error::other("disk on fire")));
        assert_eq!(error.message(), "cannot read input: disk on fire");
        assert_eq!(JobError::new("plain").to_string(), "plain");
    }
}
