//! Log levels changed at run time: Kafka's BROKER_LOGGER config resource
//! (`kafka-configs --entity-type broker-loggers`). The process that installs the
//! logger (the `brook` binary) implements [`LogLevels`]; a broker built without one
//! answers that its loggers cannot be changed.

/// The levels Kafka's tools send, upper-case; FATAL is ERROR here.
pub const LEVELS: &[&str] = &["OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

/// The logger every other one falls back to.
pub const ROOT_LOGGER: &str = "root";

/// At most this many loggers have a level of their own: every change rebuilds the
/// process's log filter, whose cost grows with them (and logging waits meanwhile).
pub const MAX_LOGGER_LEVELS: usize = 128;

pub trait LogLevels: Send + Sync {
    /// Every logger with its effective level (upper-case), the root logger first.
    fn levels(&self) -> Vec<(String, String)>;

    /// Sets each `logger` (a module path such as `brook_broker::groups`, or
    /// [`ROOT_LOGGER`]) to its `level` (one of [`LEVELS`]; `None`: follow the root
    /// logger again), all at once: either every change is made or none. Refused when
    /// more than [`MAX_LOGGER_LEVELS`] loggers would have a level of their own.
    fn set(&self, changes: &[(String, Option<&'static str>)]) -> Result<(), String>;
}

/// Whether `name` can name a logger: the root logger or a Rust module path.
pub fn valid_logger_name(name: &str) -> bool {
    name == ROOT_LOGGER
        || (!name.is_empty()
            && name.split("::").all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            }))
}

/// A logger as Kafka's tools name it (`brook_broker.groups`: dots, since
/// `kafka-configs` refuses `:` in a name) as the module path it stands for.
pub fn module_path(kafka_name: &str) -> String {
    kafka_name.replace('.', "::")
}

/// A module path as Kafka's tools name loggers.
pub fn kafka_name(module_path: &str) -> String {
    module_path.replace("::", ".")
}

/// `level` as one of [`LEVELS`], if it is one (any case).
pub fn parse_level(level: &str) -> Option<&'static str> {
    LEVELS
        .iter()
        .copied()
        .find(|l| l.eq_ignore_ascii_case(level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_levels() {
        assert!(valid_logger_name("root"));
        assert!(valid_logger_name("brook_broker::groups"));
        assert!(!valid_logger_name(""));
        assert!(!valid_logger_name("a::"));
        assert!(!valid_logger_name("a=b,c"));
        assert_eq!(module_path("brook_broker.groups"), "brook_broker::groups");
        assert_eq!(kafka_name("brook_broker::groups"), "brook_broker.groups");
        assert_eq!(parse_level("debug"), Some("DEBUG"));
        assert_eq!(parse_level("Fatal"), Some("FATAL"));
        assert_eq!(parse_level("loud"), None);
    }
}
