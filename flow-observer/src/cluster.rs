//! Watching the cluster with kube-rs: reflectors on Pods, Services, EndpointSlices, Nodes and
//! Namespaces feed the identity index (who an IP is), instead of a `--inventory` file. The
//! EndpointSlices of `default/kubernetes` say which addresses are the API server's (Cilium's
//! `kube-apiserver`), the others give Services without a selector their backends.
//!
//! ```text
//! API server ──watcher (default backoff: survives restarts)──modify: strip managed fields──>
//!   reflector stores ──(any change, at most every `debounce`)──> Inventory::from_values
//!     ──> identity index (swapped whole, so a lookup never sees half an update)
//! ```

use std::sync::Arc;
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
    changed: Arc<Notify>,
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
    (reader, feed(writer, Api::all(client.clone()), changed))
}

/// Fill a cache from a watch (managed fields stripped, default backoff), waking `changed` on
/// every event.
fn feed<K>(
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    changed: Arc<Notify>,
) -> impl Stream<Item = ()> + Send + use<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o: &mut K| o.managed_fields_mut().clear()),
    )
    .map(move |event| {
        if event.is_ok() {
            changed.notify_one();
        }
    })
}

/// Start the watches; the returned future runs them (forever, retrying with backoff).
pub fn watch(
    client: &Client,
    changed: Arc<Notify>,
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
    changed: Arc<Notify>,
) -> (PolicyStores, impl Future<Output = ()> + Send + use<>) {
    let mut stores = Vec::new();
    let mut streams = Vec::new();
    for (group, version, kind, plural) in POLICY_KINDS {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
        stores.push(writer.as_reader());
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let stream = feed(writer, api, changed.clone());
        streams.push(stream.boxed());
    }
    let run = async move {
        futures_util::stream::select_all(streams)
            .for_each(|()| async {})
            .await;
    };
    (PolicyStores(stores), run)
}

/// Run `act` after changes, at most every `debounce`: one run per burst.
pub async fn debounced(changed: Arc<Notify>, debounce: Duration, mut act: impl FnMut()) {
    loop {
        changed.notified().await;
        tokio::time::sleep(debounce).await;
        // The changes that came during the debounce are covered by this run: forget their
        // wake-up (`Notify` keeps one), so that a burst acts once.
        let _ = tokio::time::timeout(Duration::ZERO, changed.notified()).await;
        act();
    }
}

/// Rebuild the index after changes, at most every `debounce`, calling `publish` with each one.
pub async fn publish(
    stores: Stores,
    cluster_name: String,
    changed: Arc<Notify>,
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
        let (stores, run) = watch_policies(&client, Arc::new(Notify::new()));
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
        let changed = Arc::new(Notify::new());
        let published = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = published.clone();
        tokio::spawn(publish(
            stores,
            DEFAULT_CLUSTER.to_owned(),
            changed.clone(),
            Duration::from_millis(500),
            move |_| {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            },
        ));
        tokio::task::yield_now().await;
        for _ in 0..10 {
            changed.notify_one();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            published.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "not before the debounce"
        );
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(
            published.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "a burst publishes once"
        );
        changed.notify_one();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(published.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn reflectors_feed_the_identity_index() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        tokio::spawn(api_server(handle));
        let changed = Arc::new(Notify::new());
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
}
