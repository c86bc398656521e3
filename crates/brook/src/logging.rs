//! The process's logger: `tracing` to stderr, filtered by `BROOK_LOG` (or a default),
//! with levels that clients may change at run time (Kafka's BROKER_LOGGER configs,
//! `kafka-configs --entity-type broker-loggers`). `BROOK_LOG_FORMAT=json` writes one
//! JSON object per line (timestamp, level, target, fields) for log collectors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use brook_broker::log_levels::{LogLevels, MAX_LOGGER_LEVELS, ROOT_LOGGER};
use parking_lot::Mutex;
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The crates whose loggers are always listed, at their effective level.
const BROOK_LOGGERS: &[&str] = &[
    "brook",
    "brook_broker",
    "brook_coord",
    "brook_log",
    "brook_meta",
    "brook_protocol",
    "brook_raft",
];

static LEVELS: OnceLock<Arc<Levels>> = OnceLock::new();

/// Installs the logger; `default` is used when `BROOK_LOG` is unset or invalid.
pub fn init(default: &str) {
    let directives = std::env::var("BROOK_LOG")
        .ok()
        .filter(|d| EnvFilter::try_new(d).is_ok())
        .unwrap_or_else(|| default.to_string());
    let levels = Levels::parse(&directives);
    let (filter, handle) = reload::Layer::new(EnvFilter::new(levels.lock().render()));
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    // Colour only for a person at a terminal, never in a log file or a pipe.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = std::env::var("BROOK_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let text_layer = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour)
    });
    let json_layer = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(text_layer)
        .with(json_layer)
        .with(SeenTargets(seen.clone()))
        .init();
    let _ = LEVELS.set(Arc::new(Levels {
        directives: Mutex::new(levels.into_inner()),
        handle,
        seen,
    }));
}

/// The installed logger's levels, for the broker to change.
pub fn levels() -> Option<Arc<dyn LogLevels>> {
    LEVELS.get().map(|l| l.clone() as Arc<dyn LogLevels>)
}

struct Levels {
    directives: Mutex<Directives>,
    handle: reload::Handle<EnvFilter, Registry>,
    /// Every target a log statement has been reached in (what Kafka calls the loggers
    /// that exist: `kafka-configs` lets only those be set).
    seen: Arc<Mutex<BTreeSet<String>>>,
}

/// Records the target of every log statement as it is first reached (also the
/// disabled ones); filters nothing.
struct SeenTargets(Arc<Mutex<BTreeSet<String>>>);

impl<S: Subscriber> Layer<S> for SeenTargets {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        let target = metadata.target();
        if !target.starts_with("log::") {
            let mut seen = self.0.lock();
            if !seen.contains(target) {
                seen.insert(target.to_string());
            }
        }
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>, _: Context<'_, S>) -> bool {
        true
    }
}

/// The filter as a root level, per-target levels, and any directive of a form not
/// understood here (kept as written).
#[derive(Debug, Clone, PartialEq)]
struct Directives {
    root: String,
    targets: BTreeMap<String, String>,
    other: Vec<String>,
}

impl Directives {
    fn render(&self) -> String {
        let mut parts = vec![self.root.clone()];
        parts.extend(self.targets.iter().map(|(t, l)| format!("{t}={l}")));
        parts.extend(self.other.iter().cloned());
        parts.join(",")
    }

    /// The level in effect for `target`: its own, else its closest parent's, else root.
    fn effective(&self, target: &str) -> &str {
        let mut best: Option<(&str, &str)> = None;
        for (t, l) in &self.targets {
            let covers = target == t || target.starts_with(&format!("{t}::"));
            if covers && best.is_none_or(|(b, _)| t.len() > b.len()) {
                best = Some((t, l));
            }
        }
        best.map_or(self.root.as_str(), |(_, l)| l)
    }
}

impl Levels {
    fn parse(spec: &str) -> Mutex<Directives> {
        let mut d = Directives {
            root: "error".into(),
            targets: BTreeMap::new(),
            other: Vec::new(),
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                None if is_level(part) => d.root = part.to_ascii_lowercase(),
                Some((target, level)) if is_level(level) && !target.contains('[') => {
                    d.targets
                        .insert(target.to_string(), level.to_ascii_lowercase());
                }
                _ => d.other.push(part.to_string()),
            }
        }
        Mutex::new(d)
    }
}

fn is_level(s: &str) -> bool {
    ["off", "error", "warn", "info", "debug", "trace"]
        .iter()
        .any(|l| l.eq_ignore_ascii_case(s))
}

/// Kafka's level names (upper-case; FATAL is ERROR here) as `tracing`'s.
fn tracing_level(kafka: &str) -> String {
    match kafka.to_ascii_lowercase().as_str() {
        "fatal" => "error".into(),
        other => other.into(),
    }
}

impl LogLevels for Levels {
    fn levels(&self) -> Vec<(String, String)> {
        let d = self.directives.lock();
        let mut out = vec![(ROOT_LOGGER.to_string(), d.root.to_ascii_uppercase())];
        let seen = self.seen.lock();
        let mut names: Vec<&str> = d.targets.keys().map(String::as_str).collect();
        names.extend(BROOK_LOGGERS);
        names.extend(seen.iter().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        out.extend(
            names
                .into_iter()
                .map(|t| (t.to_string(), d.effective(t).to_ascii_uppercase())),
        );
        out
    }

    fn set(&self, changes: &[(String, Option<&'static str>)]) -> Result<(), String> {
        let mut d = self.directives.lock();
        let mut next = d.clone();
        for (logger, level) in changes {
            match (logger.as_str(), level) {
                (ROOT_LOGGER, Some(level)) => next.root = tracing_level(level),
                (ROOT_LOGGER, None) => return Err("the root logger always has a level".into()),
                (target, Some(level)) => {
                    next.targets
                        .insert(target.to_string(), tracing_level(level));
                }
                (target, None) => {
                    next.targets.remove(target);
                }
            }
        }
        if next.targets.len() > MAX_LOGGER_LEVELS {
            return Err(format!(
                "at most {MAX_LOGGER_LEVELS} loggers can have a level of their own"
            ));
        }
        if next == *d {
            return Ok(());
        }
        // One rebuild of the filter for the whole request.
        let filter = EnvFilter::try_new(next.render()).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        *d = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_round_trip_and_resolve() {
        let d = Levels::parse("info,openraft=warn,openraft::replication=off,x[span]=debug")
            .into_inner();
        assert_eq!(d.root, "info");
        assert_eq!(d.effective("openraft::replication::inner"), "off");
        assert_eq!(d.effective("openraft::core"), "warn");
        assert_eq!(d.effective("openraftish"), "info");
        assert_eq!(d.effective("brook_broker"), "info");
        assert_eq!(
            d.render(),
            "info,openraft=warn,openraft::replication=off,x[span]=debug"
        );
    }
}
