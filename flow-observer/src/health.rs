//! The agent's own state: since when it runs, whether it is ready, how old its identity data
//! is, and its watches' API errors.
//!
//! ```text
//! start time, node ─────────────────────────────┐
//! --inventory / --policies file (loaded once) ──┼──> Health ──> /readyz, /metrics, /flows headers
//! cluster::Watches (identity, policies) ────────┘
//! ```
//!
//! Immutable data and the watches' atomics only: `/healthz`, `/readyz` and this part of
//! `/metrics` never wait for the flow table's lock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::cluster::Watches;

/// Where a kind of data (identity, policies) comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file, loaded at the start (`--inventory`, `--policies`).
    File { loaded: Instant },
    /// The cluster, watched.
    Watched(Arc<Watches>),
    /// The cluster, but there is no API client (why).
    Unavailable(String),
}

impl Source {
    /// Why this data is not ready yet; `None` once it is.
    fn waiting(&self) -> Option<String> {
        match self {
            Self::File { .. } => None,
            Self::Watched(watches) => watches.waiting(),
            Self::Unavailable(why) => Some(format!("no Kubernetes API ({why})")),
        }
    }
}

/// What the probes and `/metrics` say about the agent itself.
#[derive(Debug)]
pub struct Health {
    /// When the agent started (wall clock).
    pub started: SystemTime,
    /// The same instant on tokio's clock.
    pub started_at: Instant,
    /// This node's name (`--node`).
    pub node: Option<String>,
    pub identity: Source,
    /// `None` without a live audit.
    pub policies: Option<Source>,
}

impl Health {
    /// `Ok` when the identity data (and the live audit's policies) have synced once; else why
    /// not, in one line. Ready stays ready: staleness later is the identity age's to tell.
    pub fn readiness(&self) -> Result<(), String> {
        // (what, why), the same why said once for both.
        let mut waiting: Vec<(String, String)> = Vec::new();
        for (what, source) in [
            ("identity", Some(&self.identity)),
            ("policies", self.policies.as_ref()),
        ] {
            let Some(why) = source.and_then(Source::waiting) else {
                continue;
            };
            match waiting.iter_mut().find(|(_, w)| *w == why) {
                Some((whats, _)) => {
                    whats.push_str(", ");
                    whats.push_str(what);
                }
                None => waiting.push((what.to_owned(), why)),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        Err(waiting
            .iter()
            .map(|(what, why)| format!("{what}: {why}"))
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// How old the identity data may be at `now`, and where it comes from (`file` or
    /// `cluster`): since the file was loaded; for the cluster, zero while every watch works,
    /// else since the first failure of a failing one, and since the start before the first
    /// complete build (or when there is no API client).
    pub fn identity_age(&self, now: Instant) -> (&'static str, Duration) {
        match &self.identity {
            Source::File { loaded } => ("file", now.saturating_duration_since(*loaded)),
            Source::Watched(watches) => ("cluster", watches.age(now)),
            Source::Unavailable(_) => ("cluster", now.saturating_duration_since(self.started_at)),
        }
    }

    /// Every watch's API errors: `(resource, count)`, identity's first.
    pub fn api_errors(&self) -> Vec<(String, u64)> {
        [Some(&self.identity), self.policies.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|source| match source {
                Source::Watched(watches) => Some(watches.states()),
                _ => None,
            })
            .flatten()
            .map(|w| (w.resource.clone(), w.errors.load(Ordering::Relaxed)))
            .collect()
    }

    /// The start time in Unix seconds.
    pub fn started_unix_s(&self) -> f64 {
        self.started
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    }

    /// The start time in RFC 3339 (UTC, milliseconds), as records carry times.
    pub fn started_rfc3339(&self) -> String {
        crate::clock::rfc3339(
            self.started
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn health(identity: Source, policies: Option<Source>) -> Health {
        Health {
            started: UNIX_EPOCH + Duration::from_millis(1_795_773_600_123),
            started_at: Instant::now(),
            node: Some("n1".to_owned()),
            identity,
            policies,
        }
    }

    #[test]
    fn files_are_ready_at_once() {
        let loaded = Instant::now();
        let h = health(Source::File { loaded }, Some(Source::File { loaded }));
        assert_eq!(h.readiness(), Ok(()));
        assert_eq!(
            h.identity_age(loaded + Duration::from_secs(7)),
            ("file", Duration::from_secs(7))
        );
        assert!(h.api_errors().is_empty());
        assert_eq!(h.started_rfc3339(), "2026-11-27T10:00:00.123Z");
        assert!((h.started_unix_s() - 1_795_773_600.123).abs() < 1e-3);
    }

    #[test]
    fn watched_data_is_not_ready_until_every_group_has_synced() {
        let identity = Arc::new(Watches::new());
        identity.register("pods");
        let policies = Arc::new(Watches::new());
        policies.register("networkpolicies");
        let h = health(
            Source::Watched(identity.clone()),
            Some(Source::Watched(policies)),
        );
        assert_eq!(
            h.readiness(),
            Err("identity: waiting for the first list of pods; policies: waiting for the first list of networkpolicies".to_owned())
        );
        let errors = h.api_errors();
        assert_eq!(
            errors,
            [("pods".to_owned(), 0), ("networkpolicies".to_owned(), 0)],
            "every watch has a series from the start"
        );
        let h = health(Source::Unavailable("no kubeconfig".to_owned()), None);
        assert_eq!(
            h.readiness().unwrap_err(),
            "identity: no Kubernetes API (no kubeconfig)"
        );
        let unavailable = Source::Unavailable("no kubeconfig".to_owned());
        let h = health(unavailable.clone(), Some(unavailable));
        assert_eq!(
            h.readiness().unwrap_err(),
            "identity, policies: no Kubernetes API (no kubeconfig)",
            "said once"
        );
        let (source, _) = h.identity_age(Instant::now());
        assert_eq!(source, "cluster");
    }
}
