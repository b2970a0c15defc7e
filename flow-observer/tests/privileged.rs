//! The real agent, the real kernel programs, real traffic: two "pods" (network namespaces joined
//! by a veth pair, each process in its own cgroup under a test cgroup the agent attaches to),
//! a TCP connection, a refused one, UDP, ICMP, IPv6, and a DNS lookup answered by dnsmasq.
//! The flow records the agent serves on `/flows` are checked.
//!
//! Needs root (CI runs as root); without it the test says `skipped: not root` and passes.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// Everything a child process wrote on one of its pipes.
fn drain(pipe: Option<impl Read>) -> String {
    let mut out = String::new();
    if let Some(mut p) = pipe {
        p.read_to_string(&mut out).unwrap();
    }
    out
}

fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cgroup_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let mut roots: Vec<&str> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1])
        })
        .collect();
    roots.sort_by_key(|r| r.len());
    PathBuf::from(roots.first().expect("a cgroup v2 mount"))
}

/// The lab: namespaces, veths, cgroups, processes; all removed on drop, even after a panic.
struct Lab {
    id: String,
    cgroup: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new(name: &str) -> Self {
        let id = format!("{}{name}", std::process::id() % 100_000);
        let cgroup = cgroup_root().join(format!("netpol-test-{id}"));
        let lab = Self {
            id,
            cgroup,
            children: Vec::new(),
        };
        let id = &lab.id;
        for pod in ["a", "b"] {
            std::fs::create_dir_all(lab.cgroup.join(pod)).unwrap();
            // Created from inside the pod's cgroup, as a container runtime does: the
            // namespace's own kernel sockets (neighbour discovery, MLD) belong to that cgroup,
            // so the programs see what they send.
            let procs = lab.cgroup.join(pod).join("cgroup.procs");
            sh(&format!(
                "echo $$ > {} && exec ip netns add np{id}{pod}",
                procs.display()
            ));
            sh(&format!("ip -n np{id}{pod} link set lo up"));
        }
        sh(&format!(
            "ip link add va{id} netns np{id}a type veth peer name vb{id} netns np{id}b"
        ));
        for (pod, last) in [("a", 1), ("b", 2)] {
            let dev = format!("v{pod}{id}");
            sh(&format!(
                "ip -n np{id}{pod} addr add 10.201.0.{last}/24 dev {dev}"
            ));
            sh(&format!(
                "ip -n np{id}{pod} addr add fd00:201::{last}/64 dev {dev} nodad"
            ));
            sh(&format!("ip -n np{id}{pod} link set {dev} up"));
        }
        // An "internet" address served by pod b, resolved by DNS.
        sh(&format!("ip -n np{id}b addr add 10.201.0.99/24 dev vb{id}"));
        lab
    }

    /// A command inside a pod: its network namespace and its cgroup.
    fn spawn(&mut self, pod: &str, cmd: &str) -> &mut Child {
        let procs = self.cgroup.join(pod).join("cgroup.procs");
        let script = format!(
            "echo $$ > {} && exec ip netns exec np{}{pod} {cmd}",
            procs.display(),
            self.id
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.children.last_mut().unwrap()
    }

    fn run(&mut self, pod: &str, cmd: &str) -> String {
        let child = self.spawn(pod, cmd);
        let out = drain(child.stdout.take());
        let status = child.wait().unwrap();
        let err = drain(child.stderr.take());
        assert!(status.success(), "`{cmd}` in pod {pod} failed: {err}");
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let id = &self.id;
        for pod in ["a", "b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("np{id}{pod}")])
                .status();
        }
        for _ in 0..50 {
            let gone = ["a", "b"].iter().all(|p| {
                std::fs::remove_dir(self.cgroup.join(p)).is_ok() || !self.cgroup.join(p).exists()
            });
            if gone && (std::fs::remove_dir(&self.cgroup).is_ok() || !self.cgroup.exists()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The agent process, killed on drop (a failed assertion must not leave it attached).
struct Agent(Option<Child>);

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn inventory(dir: &Path) -> PathBuf {
    let path = dir.join("inventory.json");
    std::fs::write(
        &path,
        r#"{"apiVersion":"v1","kind":"List","items":[
 {"kind":"Namespace","metadata":{"name":"media","labels":{"team":"arr"}}},
 {"kind":"Pod","metadata":{"name":"sonarr-5d8f7c9b6-x2kq9","namespace":"media","labels":{"app.kubernetes.io/name":"sonarr"},
   "ownerReferences":[{"kind":"ReplicaSet","name":"sonarr-5d8f7c9b6","controller":true}]},
  "spec":{"serviceAccountName":"sonarr","nodeName":"n1","containers":[{"name":"app"}]},
  "status":{"podIP":"10.201.0.1","podIPs":[{"ip":"10.201.0.1"},{"ip":"fd00:201::1"}]}},
 {"kind":"Pod","metadata":{"name":"prowlarr-0","namespace":"media","labels":{"app.kubernetes.io/name":"prowlarr"},
   "ownerReferences":[{"kind":"StatefulSet","name":"prowlarr","controller":true}]},
  "spec":{"serviceAccountName":"prowlarr","nodeName":"n1","containers":[{"name":"app"}]},
  "status":{"podIP":"10.201.0.2","podIPs":[{"ip":"10.201.0.2"},{"ip":"fd00:201::2"}]}}]}"#,
    )
    .unwrap();
    path
}

fn get(port: u16, path: &str) -> String {
    try_get(port, path).unwrap_or_else(|| panic!("GET {path} on port {port} failed"))
}

/// The body of `GET path`, or `None` when nothing answers.
fn try_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}

/// A port nobody listens on, never the same twice in this process (the tests run in parallel).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Attached programs named like ours, anywhere (bpftool).
fn attached(cgroup: &Path) -> String {
    let out = Command::new("bpftool")
        .args(["cgroup", "show"])
        .arg(cgroup)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Live audit: sonarr may reach prowlarr on 8080 (v4 and v6) and DNS on prowlarr's dnsmasq;
/// the refused connection, the UDP echo, ping and the `api.thetvdb.com` connection are drops.
const SONARR_POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: sonarr, namespace: media}
spec:
  endpointSelector: {matchLabels: {app.kubernetes.io/name: sonarr}}
  egress:
    - toEndpoints: [{matchLabels: {app.kubernetes.io/name: prowlarr}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
    - toEndpoints: [{matchLabels: {app.kubernetes.io/name: prowlarr}}]
      toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchPattern: "*"}]}}]
"#;

const TCP_SERVER: &str = r#"python3 -c "
import socket
s=socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('::',8080)); s.listen()
h=socket.socket(); h.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); h.bind(('0.0.0.0',443)); h.listen()
import select
while True:
    r,_,_=select.select([s,h],[],[])
    for l in r:
        c,_=l.accept(); n=0
        while True:
            d=c.recv(65536)
            if not d: break
            n+=len(d)
        c.sendall(b'ok'); c.close()
""#;

const UDP_ECHO: &str = r#"python3 -c "
import socket
u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0',5300))
while True:
    d,a=u.recvfrom(2048); u.sendto(d,a)
""#;

const CLIENT: &str = r#"python3 -c "
import socket, struct, time
def tcp(host, port, payload):
    c=socket.create_connection((host, port)); c.sendall(payload); c.shutdown(socket.SHUT_WR); c.recv(10); c.close()
tcp('10.201.0.2', 8080, b'x'*10000)
try:
    socket.create_connection(('10.201.0.2', 8081), timeout=2)
except OSError as e:
    print('refused', e)
u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2); u.sendto(b'ping', ('10.201.0.2', 5300)); print(u.recvfrom(100))
tcp('fd00:201::2', 8080, b'y'*3000)
q=struct.pack('>HHHHHH', 7, 0x0100, 1, 0, 0, 0) + b''.join(bytes([len(p)])+p.encode() for p in 'api.thetvdb.com'.split('.')) + b'\0' + struct.pack('>HH', 1, 1)
d=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.settimeout(2); d.sendto(q, ('10.201.0.2', 53)); r,_=d.recvfrom(512)
ip='.'.join(str(b) for b in r[-4:]); print('resolved', ip)
time.sleep(0.3)
tcp(ip, 443, b'z'*100)
""#;

#[test]
fn agent_records_real_traffic_of_pods() {
    if !is_root() {
        eprintln!("\n*** skipped: not root (the privileged eBPF tests need root) ***\n");
        return;
    }
    let mut lab = Lab::new("t");
    let policies = tempdir(&format!("{}-policies", lab.id));
    std::fs::write(policies.join("sonarr.yaml"), SONARR_POLICY).unwrap();
    let policies = policies.display().to_string();
    let (mut agent, port) = start_agent(
        &lab,
        &["--per-connection", "--log-flows", "--policies", &policies],
    );
    assert_eq!(get(port, "/healthz"), "ok\n");
    // The inventory and the policies are files: ready at once.
    assert_eq!(get(port, "/readyz"), "ready\n");
    assert!(
        attached(&lab.cgroup).contains("netpol_ingress"),
        "{}",
        attached(&lab.cgroup)
    );

    lab.spawn("b", TCP_SERVER);
    lab.spawn("b", UDP_ECHO);
    lab.spawn(
        "b",
        "dnsmasq --no-daemon --no-resolv --no-hosts --listen-address=10.201.0.2 --bind-interfaces --address=/api.thetvdb.com/10.201.0.99 --log-facility=-",
    );
    std::thread::sleep(Duration::from_millis(700));
    let out = lab.run("a", CLIENT);
    assert!(out.contains("refused"), "{out}");
    assert!(out.contains("resolved 10.201.0.99"), "{out}");
    lab.run("a", "ping -c 2 -i 0.2 10.201.0.2");
    // Link control traffic from the pod's own sockets: mDNS queries to the link-local groups
    // (ff02::fb and 224.0.0.251, nobody listens, nothing answers). Seen by the programs, never
    // a flow.
    let dev = format!("va{}", lab.id);
    lab.run(
        "a",
        &format!(
            r#"python3 -c "
import socket
six = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
six.sendto(b'q', ('ff02::fb', 5353, 0, socket.if_nametoindex('{dev}')))
four = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
four.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('10.201.0.1'))
four.sendto(b'q', ('224.0.0.251', 5353))
""#
        ),
    );
    std::thread::sleep(Duration::from_millis(600));

    let flows = get(port, "/flows");
    let records: Vec<serde_json::Value> = flows
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |proto: &str, dst_ip: &str, dst_port: Option<u64>| {
        records
            .iter()
            .find(|r| {
                r["protocol"] == proto
                    && r["destination"]["ip"] == dst_ip
                    && (dst_port.is_none() || r["destination"]["port"].as_u64() == dst_port)
            })
            .unwrap_or_else(|| panic!("no {proto} record to {dst_ip}:{dst_port:?} in:\n{flows}"))
    };
    // TCP, established, counts right: the 10,000 bytes payload, the pods named from the inventory.
    let tcp = find("tcp", "10.201.0.2", Some(8080));
    assert_eq!(tcp["source"]["namespace"], "media");
    assert_eq!(tcp["source"]["workload"], "Deployment/sonarr");
    assert_eq!(tcp["destination"]["workload"], "StatefulSet/prowlarr");
    let flags: Vec<&str> = tcp["tcp_flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        flags.contains(&"SYN") && flags.contains(&"SYN-ACK") && flags.contains(&"FIN"),
        "{tcp}"
    );
    let bytes = tcp["bytes"].as_u64().unwrap();
    assert!((10_000..20_000).contains(&bytes), "bytes {bytes}: {tcp}");
    assert!(tcp["packets"].as_u64().unwrap() >= 6, "{tcp}");
    // Refused: a SYN answered by a RST.
    let refused = find("tcp", "10.201.0.2", Some(8081));
    let flags: Vec<&str> = refused["tcp_flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        flags.contains(&"SYN") && flags.contains(&"RST"),
        "{refused}"
    );
    // UDP request and response, one record.
    let udp = find("udp", "10.201.0.2", Some(5300));
    assert_eq!(udp["packets"].as_u64(), Some(2), "{udp}");
    // ICMP echo, by type.
    let icmp = find("icmp", "10.201.0.2", None);
    assert_eq!(icmp["icmp"]["type"], 8, "{icmp}");
    assert!(icmp["packets"].as_u64().unwrap() >= 4, "{icmp}");
    // No link control traffic among the records, but counted: the pings above were seen.
    for r in &records {
        let dst = r["destination"]["ip"].as_str().unwrap_or_default();
        assert!(
            !dst.starts_with("ff02:") && !dst.starts_with("224.0.0."),
            "link-local multicast recorded: {r}"
        );
        if r["protocol"] == "icmpv6" {
            let t = r["icmp"]["type"].as_u64().unwrap_or_default();
            assert!(!(130..=153).contains(&t), "ICMPv6 control recorded: {r}");
        }
    }
    let metrics_now = get(port, "/metrics");
    assert!(
        metric(
            &metrics_now,
            "netpol_observer_kernel_link_control_packets_total"
        ) >= 2,
        "{metrics_now}"
    );
    // IPv6.
    let v6 = find("tcp", "fd00:201::2", Some(8080));
    assert_eq!(v6["destination"]["pod"], "prowlarr-0");
    // DNS: the answer named the address; the flow to it carries the name.
    let _dns = find("udp", "10.201.0.2", Some(53));
    let named = find("tcp", "10.201.0.99", Some(443));
    assert_eq!(named["destination"]["entity"], "world");
    assert_eq!(
        named["destination"]["names"][0], "api.thetvdb.com",
        "{named}"
    );

    let metrics = get(port, "/metrics");
    assert!(
        metrics.contains("netpol_observer_kernel_lost_flow_events_total 0"),
        "{metrics}"
    );
    assert!(metrics.contains("\nnetpol_observer_ready 1\n"), "{metrics}");
    assert!(
        metrics.contains("\nnetpol_observer_identity_age_seconds{source=\"file\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("netpol_observer_dns_events_total"),
        "{metrics}"
    );
    // Live audit: sonarr's allowed flows (TCP 8080 over v4 and v6, DNS) and its drops at egress
    // (the refused 8081, UDP 5300, ping, api.thetvdb.com:443).
    let verdicts = |verdict: &str, at: &str| -> Option<u64> {
        let prefix = format!(
            r#"netpol_flow_verdicts_total{{verdict="{verdict}",source_namespace="media",source_workload="Deployment/sonarr",dropped_at="{at}"}} "#
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.parse().ok()))
    };
    assert_eq!(verdicts("denied", "egress"), Some(4), "{metrics}");
    assert_eq!(verdicts("allowed", ""), Some(3), "{metrics}");

    // SIGTERM: the agent detaches and exits cleanly.
    let mut child = agent.0.take().unwrap();
    sh(&format!("kill -TERM {}", child.id()));
    let status = child.wait().unwrap();
    let logged = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    assert!(status.success(), "{err}");
    assert!(
        !attached(&lab.cgroup).contains("netpol"),
        "still attached after SIGTERM"
    );
    // --log-flows: one record line per new flow.
    let logged: Vec<serde_json::Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(logged.len() >= 7, "one line per new flow: {logged:?}");
    assert!(
        logged
            .iter()
            .any(|r| r["destination"]["names"][0] == "api.thetvdb.com"),
        "{logged:?}"
    );
    // The live audit logs each new would-be drop once, with why.
    let drops: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("would-be drop"))
        .collect();
    assert_eq!(drops.len(), 4, "{err}");
    assert!(
        drops
            .iter()
            .any(|l| l.contains(r#""destination":"world (api.thetvdb.com)""#)
                && l.contains("default deny")),
        "{err}"
    );
}

/// Start the agent on the lab's cgroup; returns it and its HTTP port once it serves.
fn start_agent(lab: &Lab, extra: &[&str]) -> (Agent, u16) {
    let inventory = inventory(&tempdir(&lab.id));
    start_agent_with(lab, extra, Some(&inventory), &[])
}

/// [`start_agent`] with this inventory file (`None`: none, the agent looks for an API server)
/// and these environment variables.
fn start_agent_with(
    lab: &Lab,
    extra: &[&str],
    inventory: Option<&Path>,
    env: &[(&str, &str)],
) -> (Agent, u16) {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_netpol-observer"));
    command
        .args(["run", "--interval-ms", "100", "--node", "n1"])
        .args(extra)
        .arg("--cgroup")
        .arg(&lab.cgroup)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        // Only `--log-flows` writes here, a few lines in these tests.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(inventory) = inventory {
        command.arg("--inventory").arg(inventory);
    }
    let agent = Agent(Some(command.spawn().unwrap()));
    // Started means: our agent answers its health check. A bare `connect` is not enough (on a
    // port of the ephemeral range, a connect can reach itself), and an agent that exited says why.
    let started = Instant::now();
    let mut agent = agent;
    while try_get(port, "/healthz").as_deref() != Some("ok\n") {
        let child = agent.0.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("agent exited ({status}) before serving:\n{stderr}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "agent did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (agent, port)
}

/// A metric, once the agent exports it (waiting up to 10 s).
fn first_metric(port: u16, name: &str) -> u64 {
    let started = Instant::now();
    loop {
        let metrics = get(port, "/metrics");
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()));
        match value {
            Some(v) => return v,
            None if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            None => panic!(
                "no metric {name} in:
{metrics}"
            ),
        }
    }
}

fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {name} in:\n{metrics}"))
}

/// More new flows than the ring buffer holds: the loss is counted, the agent keeps serving,
/// its tables and memory stay bounded.
#[test]
fn a_flood_of_new_flows_is_survived() {
    if !is_root() {
        eprintln!("\n*** skipped: not root (the privileged eBPF tests need root) ***\n");
        return;
    }
    let mut lab = Lab::new("f");
    let (agent, port) = start_agent(
        &lab,
        &[
            "--per-connection",
            "--ring-bytes",
            "4096",
            "--max-flows",
            "4096",
            "--max-records",
            "1000",
        ],
    );
    // 30,000 UDP datagrams to 30,000 ports: 30,000 new flows (and as many ICMP errors back).
    lab.run(
        "a",
        r#"python3 -c "
import socket
u=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in range(10000, 40000):
    u.sendto(b'x', ('10.201.0.2', p))
""#,
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(port, "/healthz"), "ok\n", "the agent keeps serving");
    let metrics = get(port, "/metrics");
    assert!(
        metric(&metrics, "netpol_observer_kernel_lost_flow_events_total") > 0,
        "{metrics}"
    );
    // The 4 KiB ring overflowed: when last written it held nearly all it can.
    let fill: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("netpol_observer_flow_ring_fill_ratio "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no fill ratio in:\n{metrics}"));
    assert!((0.0..=1.0).contains(&fill), "{fill}");
    assert!(
        metric(&metrics, "netpol_observer_records") <= 1000,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "netpol_observer_connections") <= 1024,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "netpol_observer_evicted_records_total") > 0,
        "{metrics}"
    );
    let pid = agent.0.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(rss_kb < 64 * 1024, "agent RSS {rss_kb} kB");
    assert!(!get(port, "/flows").is_empty());
}

fn tempdir(id: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netpol-observer-test-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Lab {
    /// Only the test's own traffic on the veth: IPv6 off (no router solicitations or MLD
    /// reports of a link just brought up) and permanent neighbour entries (no ARP), so the
    /// veth's counters are exactly the packets of the pods' sockets.
    fn quiet(&self) {
        let id = &self.id;
        let mac = |pod: &str| {
            let out = Command::new("ip")
                .args(["-n", &format!("np{id}{pod}"), "-br", "link", "show"])
                .arg(format!("v{pod}{id}"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(2)
                .unwrap()
                .to_owned()
        };
        let (mac_a, mac_b) = (mac("a"), mac("b"));
        for (pod, peer, peer_mac) in [("a", "10.201.0.2", &mac_b), ("b", "10.201.0.1", &mac_a)] {
            sh(&format!(
                "ip netns exec np{id}{pod} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.v{pod}{id}.disable_ipv6=1"
            ));
            sh(&format!(
                "ip -n np{id}{pod} neigh replace {peer} lladdr {peer_mac} dev v{pod}{id} nud permanent"
            ));
        }
    }

    /// Packets and IP bytes through pod a's veth so far (received + sent; the counters include
    /// the 14-byte Ethernet header, the kernel programs count from the IP header).
    fn veth_a(&self) -> (u64, u64) {
        let id = &self.id;
        let read = |what: &str| -> u64 {
            let out = Command::new("ip")
                .args(["netns", "exec", &format!("np{id}a"), "cat"])
                .arg(format!("/sys/class/net/va{id}/statistics/{what}"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let packets = read("rx_packets") + read("tx_packets");
        let bytes = read("rx_bytes") + read("tx_bytes");
        (packets, bytes - 14 * packets)
    }
}

/// `TCP_SERVER` on 8080 (IPv4), one thread per connection: a long connection does not hold up
/// the others.
const THREADED_TCP_SERVER: &str = r#"python3 -c "
import socket, threading
def serve(c):
    while c.recv(65536): pass
    c.sendall(b'ok'); c.close()
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0',8080)); s.listen()
while True:
    c,_=s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
""#;

/// Sonarr's records to prowlarr on 8080, summed: (connections, packets, bytes).
fn to_prowlarr_8080(port: u16) -> (u64, u64, u64) {
    get(port, "/flows")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["destination"]["port"] == 8080)
        .fold((0, 0, 0), |(c, p, b), r| {
            (
                c + r["connections"].as_u64().unwrap(),
                p + r["packets"].as_u64().unwrap(),
                b + r["bytes"].as_u64().unwrap(),
            )
        })
}

/// Waits until the agent's count of packets stops moving (its reads are 100 ms apart).
fn settled(port: u16) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let m = get(port, "/metrics");
        let now = format!(
            "{} {}",
            metric(&m, "netpol_observer_packets_total"),
            metric(&m, "netpol_observer_connections")
        );
        if now == last {
            return m;
        }
        last = now;
    }
    panic!("the agent's counts never settled")
}

/// A connection that goes idle past the timeout twice and continues, and short connections
/// around it: each connection counted once, every packet counted once (the veth's own
/// counters are the reference), the kernel entries of the idle connection deleted and created
/// again without its history coming back.
///
/// The clients read to the end before closing: a socket closed before the peer's FIN arrives
/// answers it from a TIME_WAIT socket, which the cgroup hooks never see (not a full socket),
/// and the veth would count one packet more than the agent.
#[test]
fn idle_connections_that_continue_are_counted_once() {
    if !is_root() {
        eprintln!("\n*** skipped: not root (the privileged eBPF tests need root) ***\n");
        return;
    }
    let mut lab = Lab::new("i");
    lab.quiet();
    let (_agent, port) = start_agent(&lab, &["--idle-timeout-s", "1"]);
    lab.spawn("b", THREADED_TCP_SERVER);
    std::thread::sleep(Duration::from_millis(500));
    let before = lab.veth_a();
    lab.run(
        "a",
        r#"python3 -c "
import socket, time
def done(c):
    while c.recv(10): pass
    c.close()
def short():
    c=socket.create_connection(('10.201.0.2', 8080)); c.sendall(b's'*500); c.shutdown(socket.SHUT_WR); done(c)
long=socket.create_connection(('10.201.0.2', 8080))
for burst in range(3):
    long.sendall(b'l'*2000)
    for _ in range(5): short()
    time.sleep(2.5)
long.shutdown(socket.SHUT_WR); done(long)
""#,
    );
    let metrics = settled(port);
    let (packets, bytes) = {
        let after = lab.veth_a();
        (after.0 - before.0, after.1 - before.1)
    };
    assert_eq!(to_prowlarr_8080(port), (16, packets, bytes), "{metrics}");
    assert_eq!(
        (
            metric(&metrics, "netpol_observer_packets_total"),
            metric(&metrics, "netpol_observer_bytes_total")
        ),
        (packets, bytes)
    );
    assert!(
        metric(&metrics, "netpol_observer_expired_connections_total") >= 16,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "netpol_observer_resumed_connections_total") >= 2,
        "the long connection came back twice: {metrics}"
    );
}

/// Many more connections than the table holds (an eighth of the kernel map): connections let
/// go early (evicted) are counted once, with every packet, and the kernel's LRU never has to
/// forget an entry the agent has not read.
#[test]
fn connections_evicted_from_a_full_table_are_counted_once() {
    if !is_root() {
        eprintln!("\n*** skipped: not root (the privileged eBPF tests need root) ***\n");
        return;
    }
    let mut lab = Lab::new("e");
    lab.quiet();
    // Not smaller: the kernel's LRU map keeps free entries per CPU (up to 128 each) and starts
    // evicting before it is full when it is tiny.
    let (_agent, port) = start_agent(&lab, &["--max-flows", "1024"]);
    lab.spawn("b", TCP_SERVER);
    std::thread::sleep(Duration::from_millis(500));
    let before = lab.veth_a();
    lab.run(
        "a",
        r#"python3 -c "
import socket, time
for i in range(600):
    c=socket.create_connection(('10.201.0.2', 8080)); c.sendall(b'e'*300); c.shutdown(socket.SHUT_WR)
    while c.recv(10): pass
    c.close()
    time.sleep(0.004)
""#,
    );
    let metrics = settled(port);
    let (packets, bytes) = {
        let after = lab.veth_a();
        (after.0 - before.0, after.1 - before.1)
    };
    assert!(
        metric(&metrics, "netpol_observer_evicted_connections_total") > 0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "netpol_observer_connections") <= 128,
        "an eighth of the map"
    );
    assert_eq!(to_prowlarr_8080(port), (600, packets, bytes), "{metrics}");
    assert_eq!(metric(&metrics, "netpol_observer_packets_total"), packets);
}

/// Flows of `media/<workload>` to prowlarr on 8080, by source pod: `(pod, connections)`.
fn sources_to_prowlarr(port: u16) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = get(port, "/flows")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["destination"]["port"] == 8080)
        .map(|r| {
            (
                r["source"]["pod"].as_str().unwrap_or("?").to_owned(),
                r["connections"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A record keeps who its ends were when the flow was seen: the pod deleted before `/flows`
/// is read is still named; its address, now shared by a finished Job pod and a running pod,
/// names the running one for the flows seen after.
#[test]
fn identities_are_those_of_when_the_flow_was_seen() {
    if !is_root() {
        eprintln!("\n*** skipped: not root (the privileged eBPF tests need root) ***\n");
        return;
    }
    let mut lab = Lab::new("n");
    let dir = tempdir(&format!("{}-n", lab.id));
    let file = inventory(&dir);
    let (agent, port) = start_agent_with(&lab, &[], Some(&file), &[]);
    lab.spawn("b", TCP_SERVER);
    std::thread::sleep(Duration::from_millis(500));
    let connect = r#"python3 -c "
import socket
c=socket.create_connection(('10.201.0.2', 8080)); c.sendall(b'n'*100); c.shutdown(socket.SHUT_WR)
while c.recv(10): pass
c.close()
""#;
    lab.run("a", connect);
    // Seen, named: now sonarr's pod is deleted; a Job pod that finished and radarr-0 both
    // report its address.
    std::thread::sleep(Duration::from_millis(400));
    let text = std::fs::read_to_string(&file).unwrap();
    let sonarr = text
        .lines()
        .skip_while(|l| !l.contains("sonarr-5d8f7c9b6-x2kq9"))
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    let replaced = text.replace(
        &sonarr,
        r#" {"kind":"Pod","metadata":{"name":"backup-29186400-abcde","namespace":"media","labels":{"job-name":"backup-29186400"},
   "ownerReferences":[{"kind":"Job","name":"backup-29186400","controller":true}]},
  "spec":{"nodeName":"n1","containers":[{"name":"backup"}]},
  "status":{"phase":"Succeeded","podIP":"10.201.0.1","podIPs":[{"ip":"10.201.0.1"}]}},
 {"kind":"Pod","metadata":{"name":"radarr-0","namespace":"media","labels":{"app.kubernetes.io/name":"radarr"},
   "ownerReferences":[{"kind":"StatefulSet","name":"radarr","controller":true}]},
  "spec":{"nodeName":"n1","containers":[{"name":"app"}]},
  "status":{"phase":"Running","podIP":"10.201.0.1","podIPs":[{"ip":"10.201.0.1"}]}},"#,
    );
    assert_ne!(replaced, text);
    std::fs::write(&file, replaced).unwrap();
    // The agent reads the file again within a second.
    std::thread::sleep(Duration::from_millis(2500));
    lab.run("a", connect);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sources_to_prowlarr(port),
        [
            ("radarr-0".to_owned(), 1),
            ("sonarr-5d8f7c9b6-x2kq9".to_owned(), 1)
        ],
        "{}",
        get(port, "/flows")
    );
    drop(agent);
}

/// An IPv6 address added with duplicate address detection on: the namespace's kernel sends
/// neighbour solicitations and MLD reports from its own sockets (in the pod's cgroup). None is
/// a flow; the connection over the new address is.
#[test]
fn ipv6_duplicate_address_detection_is_not_a_flow() {
    if !is_root() {
        eprintln!("\n*** skipped: not root (the privileged eBPF tests need root) ***\n");
        return;
    }
    let mut lab = Lab::new("d");
    let (_agent, port) = start_agent(&lab, &[]);
    lab.spawn("b", TCP_SERVER);
    let id = lab.id.clone();
    // The kernel's counters are exported from the agent's first read of the maps on.
    let before = first_metric(port, "netpol_observer_kernel_link_control_packets_total");
    sh(&format!(
        "ip -n np{id}a addr add fd00:201::11/64 dev va{id}"
    ));
    // Usable once detection is over (about a second).
    let started = Instant::now();
    loop {
        let out = Command::new("ip")
            .args(["-n", &format!("np{id}a"), "-6", "addr", "show", "tentative"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "DAD never ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.run(
        "a",
        r#"python3 -c "
import socket
c=socket.create_connection(('fd00:201::2', 8080), source_address=('fd00:201::11', 0)); c.sendall(b'6'*100); c.shutdown(socket.SHUT_WR)
while c.recv(10): pass
c.close()
""#,
    );
    std::thread::sleep(Duration::from_millis(500));
    let flows = get(port, "/flows");
    let records: Vec<serde_json::Value> = flows
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["source"]["ip"] == "fd00:201::11" && r["destination"]["port"] == 8080),
        "{flows}"
    );
    assert!(
        records.iter().all(|r| r["protocol"] != "icmpv6"),
        "neighbour discovery or MLD recorded: {flows}"
    );
    let after = metric(
        &get(port, "/metrics"),
        "netpol_observer_kernel_link_control_packets_total",
    );
    assert!(
        after > before,
        "the programs saw the detection: {before} → {after}"
    );
}

/// No API server (the kubeconfig points at a closed port): the agent records and serves, says
/// it is alive but not ready and why, counts the watches' errors, and names addresses `world`.
#[test]
fn an_unreachable_api_server_is_visible() {
    if !is_root() {
        eprintln!("\n*** skipped: not root (the privileged eBPF tests need root) ***\n");
        return;
    }
    let mut lab = Lab::new("k");
    let dir = tempdir(&format!("{}-k", lab.id));
    let closed = free_port();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{closed}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let (mut agent, port) = start_agent_with(
        &lab,
        &[],
        None,
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    lab.spawn("b", TCP_SERVER);
    std::thread::sleep(Duration::from_millis(500));
    lab.run(
        "a",
        r#"python3 -c "
import socket
c=socket.create_connection(('10.201.0.2', 8080)); c.sendall(b'k'*100); c.shutdown(socket.SHUT_WR)
while c.recv(10): pass
c.close()
""#,
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(port, "/healthz"), "ok\n");
    let ready = get(port, "/readyz");
    assert!(
        ready.contains("not ready") && ready.contains("failing"),
        "{ready}"
    );
    let metrics = get(port, "/metrics");
    assert!(metrics.contains("\nnetpol_observer_ready 0\n"), "{metrics}");
    let errors: u64 = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("netpol_observer_api_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(errors > 0, "{metrics}");
    let flows = get(port, "/flows");
    assert!(
        flows
            .lines()
            .any(|l| l.contains("\"10.201.0.2\"") && l.contains("\"world\"")),
        "{flows}"
    );
    // The failure is in the log, once, not once per retry.
    let child = agent.0.as_mut().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let log = drain(child.stderr.take());
    assert!(log.contains("failed"), "{log}");
    assert!(log.lines().count() < 40, "{log}");
}
