//! Watching the cluster with kube-rs: reflectors on Pods, Services, EndpointSlices, Nodes and
//! Namespaces feed the identity index (who an IP is), instead of a `--inventory` file. The
//! EndpointSlices of `default/kubernetes` say which addresses are the API server's (Cilium's
//! `kube-apiserver`), the others give Services without a selector their backends.
//!
//! ```text
//! API server ──watcher (backoff: survives restarts)──modify: strip managed fields──>
//!   reflector stores ──(any change, at most every `debounce`)──> Inventory::from_values
//!     ──> identity index (swapped whole, so a lookup never sees half an update)
//!   each watch's errors ──ErrorLog──> stderr (first at once, then with backoff, and recovery)
//!   each watch's first list, failures, error count ──Watches──> /readyz, /metrics
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use netpol_compiler::flow::inventory::Inventory;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The five caches.
#[derive(Clone)]
pub struct Stores {
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub endpoint_slices: Store<EndpointSlice>,
    pub nodes: Store<Node>,
    pub namespaces: Store<Namespace>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("pods", &self.pods.state().len())
            .field("services", &self.services.state().len())
            .field("endpoint_slices", &self.endpoint_slices.state().len())
            .field("nodes", &self.nodes.state().len())
            .field("namespaces", &self.namespaces.state().len())
            .finish()
    }
}

impl Stores {
    /// The identity index of what the caches hold now, for the cluster named `cluster_name`.
    pub fn inventory(&self, cluster_name: &str) -> Inventory {
        fn values<K>(store: &Store<K>) -> Vec<serde_json::Value>
        where
            K: Serialize + Resource + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            store
                .state()
                .iter()
                .filter_map(|o| serde_json::to_value(o.as_ref()).ok())
                .collect()
        }
        let mut all = values(&self.namespaces);
        all.extend(values(&self.nodes));
        all.extend(values(&self.services));
        all.extend(values(&self.endpoint_slices));
        all.extend(values(&self.pods));
        Inventory::from_values(all, cluster_name)
    }
}

/// A reflector on every object of kind `K`: the store, and the stream that fills it (poll it).
fn reflect<K>(
    client: &Client,
    changed: Arc<Watches>,
) -> (Store<K>, impl Stream<Item = ()> + Send + use<K>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let resource = K::plural(&()).into_owned();
    (
        reader,
        feed(writer, Api::all(client.clone()), &resource, changed),
    )
}

/// How often a failing watch is looked at when nothing happens, to tell it works again.
const TICK: Duration = Duration::from_secs(10);

/// Fill a cache from a watch (managed fields stripped, [`Backoff`]), waking the group on
/// every event; report its first complete list and its errors to the group, and log the errors
/// (see [`ErrorLog`]).
fn feed<K>(
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    resource: &str,
    group: Arc<Watches>,
) -> impl Stream<Item = ()> + Send + use<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let watch = group.register(resource);
    let mut log = ErrorLog::new(resource);
    let events = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .backoff(Backoff::default())
            .modify(|o: &mut K| o.managed_fields_mut().clear()),
    )
    .map(Some);
    // A watch that works again after an error emits nothing until an object changes: the
    // ticks let the log tell its recovery from the quiet that follows.
    let ticks = futures_util::stream::unfold((), |()| async {
        tokio::time::sleep(TICK).await;
        Some((None, ()))
    });
    futures_util::stream::select(events, ticks).map(move |item| {
        let now = Instant::now();
        let line = match item {
            Some(Ok(event)) => {
                let (answered, changed) = what_it_says(&event);
                if matches!(event, watcher::Event::InitDone) {
                    watch.listed.store(true, Ordering::Relaxed);
                }
                if changed {
                    group.changed.notify_one();
                }
                if answered { log.event(now) } else { None }
            }
            Some(Err(e)) => {
                watch.errors.fetch_add(1, Ordering::Relaxed);
                log.error(now, &watch_error(&e))
            }
            None => log.tick(now),
        };
        watch.set_failing_since(log.failing_since());
        if let Some(line) = line {
            eprintln!("{line}");
        }
    })
}

/// Whether a watch event shows the API server answered, and whether it changed what the
/// reflector's store shows. `Init` is neither: the watcher announces a relist before it asks
/// (so every retry of a failing list starts with one), and the store shows the relisted
/// objects only at `InitDone`.
fn what_it_says<K>(event: &watcher::Event<K>) -> (bool, bool) {
    match event {
        watcher::Event::Init => (false, false),
        watcher::Event::InitApply(_) => (true, false),
        watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
            (true, true)
        }
    }
}

/// kube's default backoff (0.8 s doubling to 30 s, with jitter), without the reset on every
/// event: the watcher's `Init` comes before each retry's request, so that reset undid the
/// backoff and a failing watch retried about once a second. Its own timer still starts it over
/// after two minutes without an error.
#[derive(Default)]
struct Backoff(watcher::DefaultBackoff);

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.0.next()
    }
}

impl kube::runtime::utils::Backoff for Backoff {
    fn reset(&mut self) {}
}

/// A watch error in one line: the API server's message and code, or the transport's chain of
/// causes (`tcp connect error: Connection refused`), without the client's debug dump.
fn watch_error(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(e) => format!("list: {}", api_error(e)),
        watcher::Error::WatchStartFailed(e) => format!("watch: {}", api_error(e)),
        watcher::Error::WatchFailed(e) => format!("watch stream: {}", api_error(e)),
        watcher::Error::WatchError(status) => format!("watch: {}", api_status(status)),
        other => other.to_string(),
    }
}

/// A client error in one line (see [`watch_error`]).
pub fn api_error(e: &kube::Error) -> String {
    if let kube::Error::Api(status) = e {
        return api_status(status);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn api_status(status: &kube::core::Status) -> String {
    let mut text = if status.message.is_empty() {
        "no message".to_owned()
    } else {
        status.message.clone()
    };
    match (status.code, status.reason.as_str()) {
        (0, "") => {}
        (0, reason) => text.push_str(&format!(" ({reason})")),
        (code, "") => text.push_str(&format!(" (HTTP {code})")),
        (code, reason) => text.push_str(&format!(" (HTTP {code}, {reason})")),
    }
    text
}

/// A watch counts as failing from its first error until it delivers an event, or until this
/// long passes without an error: while the API server cannot be reached the watcher retries
/// at least every 30 s (its backoff's ceiling, doubled at most by jitter) and each retry fails
/// within the client's 30 s connect timeout, so two quiet minutes mean a retry held. kube's
/// own backoff resets after the same two minutes.
pub const QUIET: Duration = Duration::from_secs(120);
/// The first gap between two lines about a failing watch; it doubles up to [`MAX_GAP`].
pub const FIRST_GAP: Duration = Duration::from_secs(30);
pub const MAX_GAP: Duration = Duration::from_secs(300);

/// What to print about one watch's errors: the first error at once; then at most one line per
/// gap (30 s, doubling up to 5 min) with the number of errors since the last line; and one
/// line when the watch works again (an event, or [`QUIET`] without an error). Pure: the caller
/// gives the time, so it is tested without an API server.
#[derive(Debug, Clone)]
pub struct ErrorLog {
    resource: String,
    failing: Option<Failing>,
}

#[derive(Debug, Clone)]
struct Failing {
    since: Instant,
    last_error: Instant,
    errors: u64,
    /// Errors since the last line printed.
    unprinted: u64,
    next_line: Instant,
    gap: Duration,
}

impl ErrorLog {
    pub fn new(resource: &str) -> Self {
        Self {
            resource: resource.to_owned(),
            failing: None,
        }
    }

    /// The watch failed with `error`: the line to print, if any.
    pub fn error(&mut self, now: Instant, error: &str) -> Option<String> {
        let resource = &self.resource;
        let Some(f) = &mut self.failing else {
            self.failing = Some(Failing {
                since: now,
                last_error: now,
                errors: 1,
                unprinted: 0,
                next_line: now + FIRST_GAP,
                gap: FIRST_GAP,
            });
            return Some(format!(
                "netpol-observer: watching {resource} failed: {error}; retrying with backoff"
            ));
        };
        f.errors += 1;
        f.unprinted += 1;
        f.last_error = now;
        if now < f.next_line {
            return None;
        }
        let line = format!(
            "netpol-observer: watching {resource} still fails after {} ({} errors since the last line): {error}",
            human(now.saturating_duration_since(f.since)),
            f.unprinted
        );
        f.unprinted = 0;
        f.gap = (f.gap * 2).min(MAX_GAP);
        f.next_line = now + f.gap;
        Some(line)
    }

    /// The watch delivered an event: it works.
    pub fn event(&mut self, now: Instant) -> Option<String> {
        self.failing.take().map(|f| self.recovered(&f, now))
    }

    /// Time passed without an event: after [`QUIET`] without an error, the watch works again.
    pub fn tick(&mut self, now: Instant) -> Option<String> {
        let quiet = self
            .failing
            .as_ref()
            .is_some_and(|f| now.saturating_duration_since(f.last_error) >= QUIET);
        if quiet {
            return self.event(now);
        }
        None
    }

    /// Since when the watch fails, if it does.
    pub fn failing_since(&self) -> Option<Instant> {
        self.failing.as_ref().map(|f| f.since)
    }

    fn recovered(&self, f: &Failing, now: Instant) -> String {
        format!(
            "netpol-observer: watching {} works again, after {} error{} in {}",
            self.resource,
            f.errors,
            if f.errors == 1 { "" } else { "s" },
            human(now.saturating_duration_since(f.since))
        )
    }
}

/// `45s`, `3m12s`, `2h05m`, `6d20h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// One group of watches filling one set of caches (the identity's, or the live audit's
/// policies): every watch registers here and reports its first complete list, its errors and
/// whether it is failing; a change to any cache wakes the group's rebuild ([`debounced`]).
/// Atomics and short locks only: `/readyz` and `/metrics` read it without the agent's lock.
#[derive(Debug)]
pub struct Watches {
    changed: Notify,
    watches: Mutex<Vec<Arc<WatchState>>>,
    /// A rebuild ran after every watch had listed once: what it built was complete.
    published: AtomicBool,
    created: Instant,
}

/// How one watch is doing.
#[derive(Debug)]
pub struct WatchState {
    pub resource: String,
    /// Its first complete list arrived (stays true).
    pub listed: AtomicBool,
    pub errors: AtomicU64,
    failing_since: Mutex<Option<Instant>>,
}

impl WatchState {
    fn set_failing_since(&self, since: Option<Instant>) {
        *self
            .failing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = since;
    }

    pub fn failing_since(&self) -> Option<Instant> {
        *self
            .failing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Watches {
    fn default() -> Self {
        Self::new()
    }
}

impl Watches {
    pub fn new() -> Self {
        Self {
            changed: Notify::new(),
            watches: Mutex::new(Vec::new()),
            published: AtomicBool::new(false),
            created: Instant::now(),
        }
    }

    /// A new watch of `resource` in the group.
    pub fn register(&self, resource: &str) -> Arc<WatchState> {
        let state = Arc::new(WatchState {
            resource: resource.to_owned(),
            listed: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            failing_since: Mutex::new(None),
        });
        self.all().push(state.clone());
        state
    }

    fn all(&self) -> std::sync::MutexGuard<'_, Vec<Arc<WatchState>>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The group's watches, in the order they were started.
    pub fn states(&self) -> Vec<Arc<WatchState>> {
        self.all().clone()
    }

    /// Wake the group's rebuild.
    pub fn notify(&self) {
        self.changed.notify_one();
    }

    fn all_listed(&self) -> bool {
        self.all().iter().all(|w| w.listed.load(Ordering::Relaxed))
    }

    /// What was built from the caches is complete: a rebuild ran after every first list.
    pub fn ready(&self) -> bool {
        self.published.load(Ordering::Relaxed)
    }

    /// Why the group is not ready yet (`None` once it is): the watches still waiting for
    /// their first list, the failing ones marked.
    pub fn waiting(&self) -> Option<String> {
        if self.ready() {
            return None;
        }
        let waiting: Vec<String> = self
            .all()
            .iter()
            .filter(|w| !w.listed.load(Ordering::Relaxed))
            .map(|w| {
                if w.failing_since().is_some() {
                    format!("{} (failing)", w.resource)
                } else {
                    w.resource.clone()
                }
            })
            .collect();
        Some(if waiting.is_empty() {
            "building from the first lists".to_owned()
        } else {
            format!("waiting for the first list of {}", waiting.join(", "))
        })
    }

    /// How far behind the API server what was built from the caches may be at `now`: zero
    /// while every watch works; since the first failure of a failing watch; and, before the
    /// group's first complete build, since the group started.
    pub fn age(&self, now: Instant) -> Duration {
        if !self.ready() {
            return now.saturating_duration_since(self.created);
        }
        self.all()
            .iter()
            .filter_map(|w| w.failing_since())
            .map(|since| now.saturating_duration_since(since))
            .max()
            .unwrap_or_default()
    }
}

/// Start the watches, reporting to the group `changed`; the returned future runs them
/// (forever, retrying with backoff).
pub fn watch(
    client: &Client,
    changed: Arc<Watches>,
) -> (Stores, impl Future<Output = ()> + Send + use<>) {
    let (pods, p) = reflect::<Pod>(client, changed.clone());
    let (services, s) = reflect::<Service>(client, changed.clone());
    let (endpoint_slices, e) = reflect::<EndpointSlice>(client, changed.clone());
    let (nodes, n) = reflect::<Node>(client, changed.clone());
    let (namespaces, ns) = reflect::<Namespace>(client, changed);
    let run = async move {
        let streams = futures_util::stream::select(
            futures_util::stream::select(futures_util::stream::select(p, s), e),
            futures_util::stream::select(n, ns),
        );
        streams.for_each(|()| async {}).await;
    };
    (
        Stores {
            pods,
            services,
            endpoint_slices,
            nodes,
            namespaces,
        },
        run,
    )
}

/// The policy kinds the live audit watches: `(group, version, kind, plural)`.
const POLICY_KINDS: [(&str, &str, &str, &str); 3] = [
    (
        "cilium.io",
        "v2",
        "CiliumNetworkPolicy",
        "ciliumnetworkpolicies",
    ),
    (
        "cilium.io",
        "v2",
        "CiliumClusterwideNetworkPolicy",
        "ciliumclusterwidenetworkpolicies",
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
];

/// Caches of the cluster's policies.
#[derive(Clone)]
pub struct PolicyStores(Vec<Store<DynamicObject>>);

impl std::fmt::Debug for PolicyStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|s| s.state().len()))
            .finish()
    }
}

impl PolicyStores {
    /// Every cached policy as a JSON document named `cluster/<kind>/<namespace>/<name>.json`
    /// (sorted), for `netpol_compiler::engine::policy::import`.
    pub fn documents(&self) -> Vec<(std::path::PathBuf, String)> {
        let mut docs: Vec<(std::path::PathBuf, String)> = Vec::new();
        for (store, (_, _, kind, _)) in self.0.iter().zip(POLICY_KINDS) {
            for o in store.state() {
                let mut value = serde_json::to_value(o.as_ref()).unwrap_or_default();
                // A watch list's items carry no kind; the import needs it.
                if let Some(map) = value.as_object_mut() {
                    map.insert(
                        "kind".to_owned(),
                        serde_json::Value::String(kind.to_owned()),
                    );
                }
                let name = format!(
                    "cluster/{kind}/{}/{}.json",
                    o.namespace().unwrap_or_else(|| "_cluster".to_owned()),
                    o.name_any()
                );
                docs.push((name.into(), value.to_string()));
            }
        }
        docs.sort();
        docs
    }
}

/// Watch the three policy kinds (a missing CRD is retried with backoff, like any error).
pub fn watch_policies(
    client: &Client,
    changed: Arc<Watches>,
) -> (PolicyStores, impl Future<Output = ()> + Send + use<>) {
    let mut stores = Vec::new();
    let mut streams = Vec::new();
    for (group, version, kind, plural) in POLICY_KINDS {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
        stores.push(writer.as_reader());
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let stream = feed(writer, api, plural, changed.clone());
        streams.push(stream.boxed());
    }
    let run = async move {
        futures_util::stream::select_all(streams)
            .for_each(|()| async {})
            .await;
    };
    (PolicyStores(stores), run)
}

/// Run `act` after changes in the group, at most every `debounce`: one run per burst. The
/// group is ready once a run started after every watch had listed once.
pub async fn debounced(changed: Arc<Watches>, debounce: Duration, mut act: impl FnMut()) {
    loop {
        changed.changed.notified().await;
        tokio::time::sleep(debounce).await;
        // The changes that came during the debounce are covered by this run: forget their
        // wake-up (`Notify` keeps one), so that a burst acts once.
        let _ = tokio::time::timeout(Duration::ZERO, changed.changed.notified()).await;
        // Read before acting: a run that starts after every first list reads complete caches.
        let complete = changed.all_listed();
        act();
        if complete {
            changed.published.store(true, Ordering::Relaxed);
        }
    }
}

/// Rebuild the index after changes, at most every `debounce`, calling `publish` with each one.
pub async fn publish(
    stores: Stores,
    cluster_name: String,
    changed: Arc<Watches>,
    debounce: Duration,
    mut publish: impl FnMut(Inventory),
) {
    debounced(changed, debounce, move || {
        publish(stores.inventory(&cluster_name));
    })
    .await;
}

#[cfg(test)]
mod tests {
    #![expect(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "tests"
    )]

    use std::net::IpAddr;

    use http::{Request, Response};
    use kube::client::Body;
    use netpol_compiler::engine::settings::{DEFAULT_CLUSTER, Settings};

    use super::*;

    /// Answers the client like an API server: LIST with the recorded list, WATCH with one
    /// recorded event (the pod gets a new label), then ends the watch (the watcher resumes).
    async fn api_server(mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>) {
        let pods = include_str!("../tests/fixtures/api/pods.json");
        let event = include_str!("../tests/fixtures/api/pod-watch-event.json");
        let namespaces = include_str!("../tests/fixtures/api/namespaces.json");
        let nodes = include_str!("../tests/fixtures/api/nodes.json");
        let services = include_str!("../tests/fixtures/api/services.json");
        let slices = include_str!("../tests/fixtures/api/endpointslices.json");
        let mut pod_watches = 0;
        while let Some((request, send)) = handle.next_request().await {
            let uri = request.uri().to_string();
            let watching = uri.contains("watch=true");
            let body = match (uri.split('?').next().unwrap_or(""), watching) {
                ("/api/v1/pods", false) => pods.to_owned(),
                ("/api/v1/pods", true) => {
                    pod_watches += 1;
                    if pod_watches == 1 {
                        event.replace('\n', "") + "\n"
                    } else {
                        String::new()
                    }
                }
                ("/api/v1/namespaces", false) => namespaces.to_owned(),
                ("/api/v1/nodes", false) => nodes.to_owned(),
                ("/api/v1/services", false) => services.to_owned(),
                ("/apis/discovery.k8s.io/v1/endpointslices", false) => slices.to_owned(),
                (_, true) => String::new(),
                (path, false) => panic!("unexpected request {path}"),
            };
            send.send_response(
                Response::builder()
                    .status(200)
                    .body(Body::from(body.into_bytes()))
                    .unwrap(),
            );
        }
    }

    #[tokio::test]
    async fn policies_are_watched_for_the_live_audit() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        tokio::spawn(async move {
            let cnps = include_str!("../tests/fixtures/api/cnps.json");
            while let Some((request, send)) = handle.next_request().await {
                let uri = request.uri().to_string();
                let path = uri.split('?').next().unwrap_or("").to_owned();
                let body = match (path.as_str(), uri.contains("watch=true")) {
                    (_, true) => String::new(),
                    ("/apis/cilium.io/v2/ciliumnetworkpolicies", false) => cnps.to_owned(),
                    ("/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies", false) => {
                        r#"{"apiVersion":"cilium.io/v2","kind":"CiliumClusterwideNetworkPolicyList","metadata":{"resourceVersion":"1"},"items":[]}"#.to_owned()
                    }
                    ("/apis/networking.k8s.io/v1/networkpolicies", false) => {
                        r#"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicyList","metadata":{"resourceVersion":"1"},"items":[]}"#.to_owned()
                    }
                    (other, _) => panic!("unexpected {other}"),
                };
                send.send_response(
                    Response::builder()
                        .status(200)
                        .body(Body::from(body.into_bytes()))
                        .unwrap(),
                );
            }
        });
        let (stores, run) = watch_policies(&client, Arc::new(Watches::new()));
        tokio::spawn(run);
        let mut documents = Vec::new();
        for _ in 0..200 {
            documents = stores.documents();
            if !documents.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(documents.len(), 1);
        assert_eq!(
            documents[0].0,
            std::path::PathBuf::from("cluster/CiliumNetworkPolicy/media/sonarr.json")
        );
        let mut audit = crate::audit::Audit::empty(Settings::default());
        audit.reload(documents, None).unwrap();
        assert_eq!(audit.policies, 1);
    }

    /// Bursts of changes publish one index each, after the debounce, with tokio's clock paused.
    #[tokio::test(start_paused = true)]
    async fn changes_are_published_debounced() {
        let (reader, _writer) = reflector::store::<Pod>();
        let (services, _w2) = reflector::store::<Service>();
        let (nodes, _w3) = reflector::store::<Node>();
        let (namespaces, _w4) = reflector::store::<Namespace>();
        let (endpoint_slices, _w5) = reflector::store::<EndpointSlice>();
        let stores = Stores {
            pods: reader,
            services,
            endpoint_slices,
            nodes,
            namespaces,
        };
        let changed = Arc::new(Watches::new());
        let published = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = published.clone();
        tokio::spawn(publish(
            stores,
            DEFAULT_CLUSTER.to_owned(),
            changed.clone(),
            Duration::from_millis(500),
            move |_| {
                count.fetch_add(1, Ordering::SeqCst);
            },
        ));
        tokio::task::yield_now().await;
        for _ in 0..10 {
            changed.notify();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            published.load(Ordering::SeqCst),
            0,
            "not before the debounce"
        );
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(
            published.load(Ordering::SeqCst),
            1,
            "a burst publishes once"
        );
        changed.notify();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(published.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn reflectors_feed_the_identity_index() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        tokio::spawn(api_server(handle));
        let changed = Arc::new(Watches::new());
        let (stores, run) = watch(&client, changed.clone());
        tokio::spawn(run);
        // Wait until the caches hold the lists and the watch event.
        let mut inventory = stores.inventory(DEFAULT_CLUSTER);
        for _ in 0..200 {
            inventory = stores.inventory(DEFAULT_CLUSTER);
            let pod = inventory.pod("media", "sonarr-5d8f7c9b6-x2kq9");
            if pod.is_some_and(|p| p.labels.get("tier").is_some_and(|t| t == "web"))
                && inventory.nodes.len() == 2
                && inventory.is_apiserver("192.168.1.12".parse().unwrap())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ip: IpAddr = "10.42.0.17".parse().unwrap();
        let pod = inventory.pod_by_ip(ip).expect("the pod, by IP");
        assert_eq!(pod.workload, "Deployment/sonarr");
        assert_eq!(
            pod.labels.get("tier").map(String::as_str),
            Some("web"),
            "the watch event was applied"
        );
        assert_eq!(
            inventory.node_by_ip("192.168.1.12".parse().unwrap()),
            Some("talos-2")
        );
        assert!(
            inventory.is_apiserver("192.168.1.12".parse().unwrap()),
            "the EndpointSlice of default/kubernetes marks the API server"
        );
        assert!(
            inventory
                .service_by_ip("10.96.14.2".parse().unwrap())
                .is_some()
        );
        assert_eq!(
            pod.identity
                .get(Some("k8s"), "io.cilium.k8s.namespace.labels.team"),
            Some("arr"),
            "namespace labels from the namespace cache"
        );
        // Managed fields are dropped before caching.
        let cached = stores.pods.state();
        assert!(cached.iter().all(|p| p.managed_fields().is_empty()));
        assert!(!cached.is_empty());
    }

    #[test]
    fn errors_are_logged_first_at_once_then_with_backoff_and_recovery_once() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut log = ErrorLog::new("pods");
        assert_eq!(log.failing_since(), None);
        assert_eq!(log.tick(at(0)), None, "nothing to say while it works");
        assert_eq!(
            log.error(at(0), "connection refused").as_deref(),
            Some(
                "netpol-observer: watching pods failed: connection refused; retrying with backoff"
            )
        );
        assert_eq!(log.failing_since(), Some(at(0)));
        // The watcher's retries within the first gap (30 s) are counted, not printed.
        for s in [1, 3, 7, 15, 29] {
            assert_eq!(log.error(at(s), "connection refused"), None, "at {s}s");
        }
        assert_eq!(
            log.error(at(31), "connection refused").as_deref(),
            Some(
                "netpol-observer: watching pods still fails after 31s (6 errors since the last line): connection refused"
            )
        );
        // The gap doubles: 60 s after that line.
        assert_eq!(log.error(at(61), "timed out"), None);
        assert_eq!(log.error(at(90), "timed out"), None);
        assert_eq!(
            log.error(at(91), "timed out").as_deref(),
            Some(
                "netpol-observer: watching pods still fails after 1m31s (3 errors since the last line): timed out"
            )
        );
        // A tick within the quiet time after the last error says nothing.
        assert_eq!(log.tick(at(91) + QUIET - Duration::from_secs(1)), None);
        assert_eq!(log.failing_since(), Some(at(0)));
        // An event: it works again, said once.
        assert_eq!(
            log.event(at(100)).as_deref(),
            Some("netpol-observer: watching pods works again, after 10 errors in 1m40s")
        );
        assert_eq!(log.failing_since(), None);
        assert_eq!(log.event(at(101)), None);
        // A new failure starts over: printed at once.
        assert!(log.error(at(200), "refused").is_some());
        assert!(log.error(at(201), "refused").is_none());
    }

    #[test]
    fn gaps_between_lines_stop_growing_at_five_minutes() {
        let t0 = Instant::now();
        let mut log = ErrorLog::new("nodes");
        let mut printed = Vec::new();
        // An error every 10 s for 40 minutes.
        for s in (0..2400).step_by(10) {
            if log.error(t0 + Duration::from_secs(s), "refused").is_some() {
                printed.push(s);
            }
        }
        assert_eq!(
            printed,
            [0, 30, 90, 210, 450, 750, 1050, 1350, 1650, 1950, 2250]
        );
    }

    #[test]
    fn a_quiet_watch_after_errors_works_again() {
        let t0 = Instant::now();
        let mut log = ErrorLog::new("ciliumnetworkpolicies");
        log.error(t0, "404 page not found");
        log.error(t0 + Duration::from_secs(5), "404 page not found");
        // A retry that succeeds emits nothing; two quiet minutes say it held.
        assert_eq!(log.tick(t0 + Duration::from_secs(124)), None);
        assert_eq!(
            log.tick(t0 + Duration::from_secs(125)).as_deref(),
            Some(
                "netpol-observer: watching ciliumnetworkpolicies works again, after 2 errors in 2m05s"
            )
        );
        assert_eq!(log.tick(t0 + Duration::from_secs(200)), None);
    }

    #[test]
    fn age_is_zero_while_every_watch_works_and_counts_from_the_first_failure() {
        let group = Watches::new();
        let t0 = group.created;
        let pods = group.register("pods");
        let nodes = group.register("nodes");
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!group.ready());
        assert_eq!(group.age(at(30)), Duration::from_secs(30), "never built");
        assert_eq!(
            group.waiting().as_deref(),
            Some("waiting for the first list of pods, nodes")
        );
        pods.listed.store(true, Ordering::Relaxed);
        nodes.set_failing_since(Some(at(2)));
        assert_eq!(
            group.waiting().as_deref(),
            Some("waiting for the first list of nodes (failing)")
        );
        nodes.set_failing_since(None);
        nodes.listed.store(true, Ordering::Relaxed);
        assert_eq!(
            group.waiting().as_deref(),
            Some("building from the first lists")
        );
        group.published.store(true, Ordering::Relaxed);
        assert_eq!(group.waiting(), None);
        assert_eq!(group.age(at(40)), Duration::ZERO);
        pods.set_failing_since(Some(at(50)));
        nodes.set_failing_since(Some(at(55)));
        assert_eq!(
            group.age(at(60)),
            Duration::from_secs(10),
            "the oldest failure"
        );
        pods.set_failing_since(None);
        assert_eq!(group.age(at(60)), Duration::from_secs(5));
        nodes.set_failing_since(None);
        assert_eq!(group.age(at(60)), Duration::ZERO);
        assert!(group.waiting().is_none(), "ready stays ready");
    }

    #[tokio::test]
    async fn identity_is_ready_once_built_after_every_first_list() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        tokio::spawn(api_server(handle));
        let changed = Arc::new(Watches::new());
        let (stores, run) = watch(&client, changed.clone());
        assert_eq!(
            changed.waiting().as_deref(),
            Some("waiting for the first list of pods, services, endpointslices, nodes, namespaces")
        );
        tokio::spawn(run);
        let built = Arc::new(Mutex::new(None));
        let keep = built.clone();
        tokio::spawn(publish(
            stores,
            DEFAULT_CLUSTER.to_owned(),
            changed.clone(),
            Duration::from_millis(20),
            move |inventory| *keep.lock().unwrap() = Some(inventory),
        ));
        for _ in 0..300 {
            if changed.ready() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(changed.ready(), "{:?}", changed.waiting());
        let inventory = built.lock().unwrap().take().unwrap();
        assert_eq!(
            inventory.nodes.len(),
            2,
            "the build after the lists is complete"
        );
        assert_eq!(changed.age(Instant::now()), Duration::ZERO);
        for w in changed.states() {
            assert_eq!(w.errors.load(Ordering::Relaxed), 0, "{}", w.resource);
        }
    }

    #[tokio::test]
    async fn watch_errors_are_counted_and_keep_the_group_waiting() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        tokio::spawn(async move {
            let status = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcdserver: request timed out","reason":"InternalError","code":500}"#;
            while let Some((request, send)) = handle.next_request().await {
                let uri = request.uri().to_string();
                let list = |kind: &str| {
                    format!(
                        r#"{{"apiVersion":"v1","kind":"{kind}List","metadata":{{"resourceVersion":"1"}},"items":[]}}"#
                    )
                };
                let (code, body) = match (
                    uri.split('?').next().unwrap_or(""),
                    uri.contains("watch=true"),
                ) {
                    ("/api/v1/pods", false) => (500, status.to_owned()),
                    (_, true) => (200, String::new()),
                    ("/api/v1/services", false) => (200, list("Service")),
                    ("/api/v1/nodes", false) => (200, list("Node")),
                    ("/api/v1/namespaces", false) => (200, list("Namespace")),
                    ("/apis/discovery.k8s.io/v1/endpointslices", false) => {
                        (200, list("EndpointSlice"))
                    }
                    (other, _) => panic!("unexpected {other}"),
                };
                send.send_response(
                    Response::builder()
                        .status(code)
                        .body(Body::from(body.into_bytes()))
                        .unwrap(),
                );
            }
        });
        let changed = Arc::new(Watches::new());
        let (stores, run) = watch(&client, changed.clone());
        tokio::spawn(run);
        tokio::spawn(publish(
            stores,
            DEFAULT_CLUSTER.to_owned(),
            changed.clone(),
            Duration::from_millis(20),
            |_| {},
        ));
        let errors = || {
            changed
                .states()
                .iter()
                .map(|w| (w.resource.clone(), w.errors.load(Ordering::Relaxed)))
                .collect::<Vec<_>>()
        };
        for _ in 0..300 {
            if changed.waiting().as_deref() == Some("waiting for the first list of pods (failing)")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            changed.waiting().as_deref(),
            Some("waiting for the first list of pods (failing)")
        );
        assert!(!changed.ready());
        let counted = errors();
        assert!(
            counted.iter().any(|(r, n)| r == "pods" && *n >= 1),
            "{counted:?}"
        );
        assert!(
            counted.iter().all(|(r, n)| r == "pods" || *n == 0),
            "{counted:?}"
        );
        assert!(changed.age(Instant::now()) > Duration::ZERO);
    }

    /// No API server runs here; a closed port stands for an unreachable one.
    #[tokio::test]
    async fn transport_errors_name_their_cause_in_one_line() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let e = Api::<Pod>::all(client)
            .list(&kube::api::ListParams::default())
            .await
            .unwrap_err();
        let text = api_error(&e);
        assert!(text.contains("Connection refused"), "{text}");
        assert!(!text.contains('\n') && !text.contains("{ "), "{text}");
    }

    /// Regression: the watcher's `Init` before each retry reset kube's backoff and counted as
    /// the watch working again, so a failing list was retried (and logged as recovered and
    /// failed again) about once a second. Five minutes of tokio's paused clock.
    #[tokio::test(start_paused = true)]
    async fn a_failing_watch_backs_off_and_stays_failing() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let lists = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = lists.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                assert_eq!(request.uri().path(), "/api/v1/nodes");
                count.fetch_add(1, Ordering::SeqCst);
                send.send_response(
                    Response::builder()
                        .status(500)
                        .body(Body::from(b"etcdserver: request timed out".to_vec()))
                        .unwrap(),
                );
            }
        });
        let group = Arc::new(Watches::new());
        let (_nodes, run) = reflect::<Node>(&client, group.clone());
        tokio::spawn(run.for_each(|()| async {}));
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(300)).await;
        let lists = lists.load(Ordering::SeqCst);
        // 0.8 s doubling to 30 s (jitter at most doubles each wait): about a dozen tries.
        assert!((6..=20).contains(&lists), "{lists} lists in five minutes");
        let nodes = &group.states()[0];
        assert_eq!(nodes.errors.load(Ordering::SeqCst), lists as u64);
        let since = nodes.failing_since().expect("still failing");
        assert!(
            since.duration_since(start) < Duration::from_secs(1),
            "failing since the first error, not since the last retry"
        );
        assert!(!nodes.listed.load(Ordering::SeqCst));
    }
}
