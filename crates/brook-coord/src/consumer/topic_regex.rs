//! Regular-expression subscriptions (KIP-848's `SubscribedTopicRegex`): checking a
//! member's pattern and resolving a group's patterns to topic names.
//!
//! Kafka compiles patterns with RE2/J and matches whole topic names
//! (`matcher(topic).matches()`); Brook uses the `regex` crate (the same RE2 family:
//! linear-time matching, no backreferences) with the pattern anchored at both ends.
//! Compiled programs are bounded ([`REGEX_SIZE_LIMIT_BYTES`]) so a client cannot make
//! the coordinator build a huge automaton, and patterns are bounded in length
//! ([`MAX_REGEX_LENGTH_BYTES`]: the pattern is a string of the
//! ConsumerGroupRegularExpression record's key, whose length is an i16).
//!
//! Internal topics never match, as Kafka leaves them out of regex subscriptions.

use std::collections::{BTreeMap, BTreeSet};

use regex::{Regex, RegexBuilder};

use super::TopicsView;

/// The longest pattern a member may subscribe with: the key string of its
/// ConsumerGroupRegularExpression record has an i16 length.
pub(crate) const MAX_REGEX_LENGTH_BYTES: usize = i16::MAX as usize;

/// The most memory a compiled pattern may take (the `regex` crate's `size_limit`; its
/// default is 10 MiB). `[a-z]{1000}` fits; nested counted repetitions do not.
pub(crate) const REGEX_SIZE_LIMIT_BYTES: usize = 1 << 20;

/// The cache of the lazy DFA that runs a compiled pattern (`dfa_size_limit`).
const REGEX_DFA_SIZE_LIMIT_BYTES: usize = 1 << 20;

/// Kafka's `REGEX_BATCH_REFRESH_MIN_INTERVAL_MS`: a group's patterns are not resolved
/// again within this time of their last resolution, whatever asks for it (new topics);
/// a pattern no member of the group used before is resolved at once.
pub(crate) const REGEX_REFRESH_MIN_INTERVAL_MS: i64 = 10_000;

/// A pattern of the group and the topics it matched when last resolved (Kafka's
/// ResolvedRegularExpression, the ConsumerGroupRegularExpression record's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedRegex {
    /// Matching topic names, internal topics left out. A name may outlive its topic
    /// until the next resolution; only topics that exist are assigned.
    pub topics: BTreeSet<String>,
    /// [`TopicsView::topics_version`] of the metadata it was resolved against.
    pub version: i64,
    /// When it was resolved.
    pub resolved_at_ms: i64,
}

/// Compiles `pattern` to match whole topic names, or says why it is not a valid
/// regular expression (Kafka's INVALID_REGULAR_EXPRESSION message).
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    let invalid = |why: String| {
        format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {why}.")
    };
    if pattern.len() > MAX_REGEX_LENGTH_BYTES {
        return Err(invalid(format!(
            "it is longer than {MAX_REGEX_LENGTH_BYTES} bytes"
        )));
    }
    let build = |p: &str| {
        RegexBuilder::new(p)
            .size_limit(REGEX_SIZE_LIMIT_BYTES)
            .dfa_size_limit(REGEX_DFA_SIZE_LIMIT_BYTES)
            .build()
    };
    // The pattern alone first: wrapping it could make an unbalanced one such as
    // `a)|(b` parse.
    build(pattern).map_err(|e| invalid(describe(&e)))?;
    build(&format!("^(?:{pattern})$")).map_err(|e| invalid(describe(&e)))
}

fn describe(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(limit) => {
            format!("it compiles to more than {limit} bytes")
        }
        // The syntax error's text spans lines (the pattern with a caret under the fault,
        // then `error: what`): the last line says what is wrong.
        other => {
            let text = other.to_string();
            let last = text.lines().last().unwrap_or_default().trim();
            last.strip_prefix("error: ").unwrap_or(last).to_owned()
        }
    }
}

/// The topics each pattern matches now: every topic of `topics` but the internal ones
/// and those the requester may not DESCRIBE ([`TopicsView::may_describe`], asked only
/// of matching topics, once each). A pattern that does not compile (only possible for one replayed from a log written
/// by another implementation) matches nothing.
pub(crate) fn resolve<'a>(
    patterns: impl Iterator<Item = &'a str>,
    topics: &dyn TopicsView,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut compiled = Vec::new();
    let mut resolved = BTreeMap::new();
    for pattern in patterns {
        resolved.insert(pattern.to_owned(), BTreeSet::new());
        match compile(pattern) {
            Ok(regex) => compiled.push((pattern, regex)),
            Err(why) => tracing::warn!(%why, "ignoring a subscribed pattern that does not compile"),
        }
    }
    if compiled.is_empty() {
        return resolved;
    }
    topics.each_topic(&mut |name, internal| {
        if internal {
            return;
        }
        let mut describable = None;
        for (pattern, regex) in &compiled {
            if regex.is_match(name) && *describable.get_or_insert_with(|| topics.may_describe(name))
            {
                if let Some(set) = resolved.get_mut(*pattern) {
                    set.insert(name.to_owned());
                }
            }
        }
    });
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::testing::Topics;

    #[test]
    fn invalid_patterns_are_refused_with_a_reason() {
        for pattern in ["(", "a)|(b", "[z-a]", "*", "a{2,1}", "(?P<x>a)(?P<x>b)"] {
            let why = compile(pattern).expect_err(pattern);
            assert!(why.contains(pattern), "{why}");
            assert!(!why.contains('\n'), "{why}");
            assert!(!why.ends_with(": ."), "{why}");
        }
        // Backreferences and lookaround are not RE2: refused, as RE2/J refuses them.
        assert!(compile(r"(a)\1").is_err());
        assert_eq!(
            compile("regex-(").unwrap_err(),
            "SubscribedTopicRegex `regex-(` is not a valid regular expression: unclosed group."
        );
        assert!(compile("a(?=b)").is_err());
    }

    #[test]
    fn huge_and_long_patterns_are_refused() {
        let why = compile("(((a{100}){100}){100})").unwrap_err();
        assert!(why.contains("compiles to more than"), "{why}");
        assert!(compile("[a-z]{1000}").is_ok());
        let long = "a".repeat(MAX_REGEX_LENGTH_BYTES + 1);
        assert!(compile(&long).unwrap_err().contains("longer than"));
    }

    #[test]
    fn whole_names_match() {
        let check = |pattern: &str, topic: &str, expected: bool| {
            let regex = compile(pattern).unwrap();
            assert_eq!(regex.is_match(topic), expected, "{pattern} ~ {topic}");
        };
        check("regex-.*", "regex-a", true);
        check("regex-.*", "other-regex-a", false);
        check("regex", "regex-a", false);
        check("a|ab", "ab", true);
        check("a|b", "ab", false);
        check("^t.*$", "topic", true);
        check(".*", "", true);
        check("t[0-9]+", "t12", true);
        check("t[0-9]+", "t12x", false);
    }

    #[test]
    fn internal_topics_never_match() {
        let topics = Topics::with(&[
            ("__consumer_offsets", 50),
            ("__transaction_state", 50),
            ("__mine", 1),
            ("a", 1),
        ]);
        let resolved = resolve(["_.*", ".*", "("].into_iter(), &topics);
        assert_eq!(
            resolved["_.*"],
            BTreeSet::from(["__mine".to_owned()]),
            "only the internal topics are left out"
        );
        assert_eq!(
            resolved[".*"],
            BTreeSet::from(["__mine".to_owned(), "a".to_owned()])
        );
        assert!(resolved["("].is_empty());
    }

    /// Topics the requester may not DESCRIBE are left out; only matching topics are
    /// asked about.
    #[test]
    fn undescribable_topics_never_match() {
        struct Acl(Topics, std::cell::RefCell<Vec<String>>);
        impl TopicsView for Acl {
            fn topic(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
                self.0.topic(name)
            }
            fn topic_name(&self, id: &uuid::Uuid) -> Option<String> {
                self.0.topic_name(id)
            }
            fn each_topic(&self, each: &mut dyn FnMut(&str, bool)) {
                self.0.each_topic(each)
            }
            fn topics_version(&self) -> i64 {
                self.0.topics_version()
            }
            fn may_describe(&self, name: &str) -> bool {
                self.1.borrow_mut().push(name.to_owned());
                name != "secret"
            }
        }
        let topics = Acl(
            Topics::with(&[("open", 1), ("secret", 1), ("zzz", 1)]),
            Default::default(),
        );
        let resolved = resolve(["[os].*", "s.*"].into_iter(), &topics);
        assert_eq!(resolved["[os].*"], BTreeSet::from(["open".to_owned()]));
        assert!(resolved["s.*"].is_empty());
        assert_eq!(*topics.1.borrow(), vec!["open", "secret"]);
    }
}
