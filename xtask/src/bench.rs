//! `cargo xtask bench-observer` (root): what the observer costs, on this machine.
//!
//! Two network namespaces joined by a veth pair, the traffic's processes in a test cgroup:
//! 1. TCP throughput (iperf3, 5 s) without the agent, then with its programs attached: the loss;
//! 2. the programs' cost per packet, from `kernel.bpf_stats_enabled` (run_time_ns / run_cnt);
//! 3. new flows per second without loss: UDP to 230,000 distinct destinations, paced at
//!    200,000/s and then as fast as two sender threads go, and the kernel's lost-event counter;
//! 4. the agent's RSS holding 100,000 live connections.
//!
//! Figures go to the README's performance section, with this command.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{process, workspace_root};

const ID: &str = "npbench";

fn sh(cmd: &str) -> Result<String> {
    process::stdout(Command::new("sh").arg("-c").arg(cmd))
}

struct Lab {
    cgroup: PathBuf,
    children: Vec<Child>,
}

impl Lab {
    fn new() -> Result<Self> {
        let cgroup = PathBuf::from("/sys/fs/cgroup/unified").join(ID);
        let cgroup = if cgroup.parent().is_some_and(Path::exists) {
            cgroup
        } else {
            PathBuf::from("/sys/fs/cgroup").join(ID)
        };
        let lab = Self {
            cgroup,
            children: Vec::new(),
        };
        lab.cleanup();
        std::fs::create_dir_all(&lab.cgroup)?;
        sh(&format!(
            "ip netns add {ID}a && ip netns add {ID}b && \
             ip link add {ID}va netns {ID}a type veth peer name {ID}vb netns {ID}b && \
             ip -n {ID}a addr add 10.202.0.1/24 dev {ID}va && ip -n {ID}b addr add 10.202.0.2/24 dev {ID}vb && \
             ip -n {ID}a link set {ID}va up && ip -n {ID}b link set {ID}vb up && \
             ip -n {ID}a link set lo up && ip -n {ID}b link set lo up"
        ))?;
        Ok(lab)
    }

    fn command(&self, ns: &str, cmd: &str) -> Command {
        let procs = self.cgroup.join("cgroup.procs");
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "echo $$ > {} && exec ip netns exec {ID}{ns} {cmd}",
            procs.display()
        ));
        c
    }

    fn spawn(&mut self, ns: &str, cmd: &str) -> Result<()> {
        let child = self
            .command(ns, cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.children.push(child);
        Ok(())
    }

    fn run(&self, ns: &str, cmd: &str) -> Result<String> {
        process::stdout(&mut self.command(ns, cmd))
    }

    fn cleanup(&self) {
        for ns in ["a", "b"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("{ID}{ns}")])
                .status();
        }
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(Duration::from_millis(200));
        self.cleanup();
    }
}

fn iperf(lab: &Lab) -> Result<f64> {
    let out = lab.run("a", "iperf3 -c 10.202.0.2 -t 5 -J")?;
    let v: serde_json::Value = serde_json::from_str(&out).context("iperf3 JSON")?;
    v.pointer("/end/sum_received/bits_per_second")
        .and_then(serde_json::Value::as_f64)
        .context("iperf3 result")
}

struct Agent(Child, u16);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

fn agent(lab: &Lab, extra: &[&str]) -> Result<Agent> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bin = workspace_root().join("target/release/netpol-observer");
    let child = Command::new(bin)
        .args(["run", "--per-connection", "--cgroup"])
        .arg(&lab.cgroup)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("the agent did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Agent(child, port))
}

fn metric(port: u16, name: &str) -> Result<u64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    std::io::Write::write_all(
        &mut s,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no metric {name}"))
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")
}

/// `run_time_ns / run_cnt` of our two programs, from bpftool.
fn ns_per_packet() -> Result<(u64, u64)> {
    let out = sh("bpftool prog show -j")?;
    let progs: serde_json::Value = serde_json::from_str(&out)?;
    let (mut time, mut count) = (0, 0);
    for p in progs.as_array().into_iter().flatten() {
        let field = |k: &str| p.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        if p.get("name")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|n| n.starts_with("netpol_"))
        {
            time += field("run_time_ns");
            count += field("run_cnt");
        }
    }
    Ok((time, count))
}

/// `cargo xtask flood COUNT RATE` (run by the benchmark inside a network namespace): UDP
/// datagrams to COUNT distinct (10.202.x.2, port) pairs at RATE per second; prints the rate
/// achieved.
pub fn flood(count: u32, rate: u32) -> Result<()> {
    // Two senders (this machine has two cores): one core's sendto rate is the limit otherwise.
    const SENDERS: u32 = 2;
    let started = Instant::now();
    let handles: Vec<_> = (0..SENDERS)
        .map(|k| {
            std::thread::spawn(move || -> std::io::Result<()> {
                let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
                let mine = (0..count).filter(|i| i % SENDERS == k);
                for (n, i) in mine.enumerate() {
                    let net = u8::try_from(1 + i / 60_000).unwrap_or(4);
                    let port = u16::try_from(1024 + i % 60_000).unwrap_or(1024);
                    // A closed port answers with ICMP; a full socket buffer is no failure here.
                    let _ =
                        socket.send_to(b"x", std::net::SocketAddr::from(([10, 202, net, 2], port)));
                    let n = u32::try_from(n).unwrap_or(u32::MAX);
                    if rate > 0 && n % 1000 == 999 {
                        let due = Duration::from_secs_f64(
                            f64::from(n + 1) * f64::from(SENDERS) / f64::from(rate),
                        );
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
    }
    println!("{:.0}", f64::from(count) / started.elapsed().as_secs_f64());
    Ok(())
}

pub fn run() -> Result<()> {
    process::run(
        Command::new(process::cargo())
            .args(["build", "--release", "-p", "netpol-observer"])
            .current_dir(workspace_root()),
    )?;
    let mut lab = Lab::new()?;
    // Destinations for the flood: the peer answers on several /24s, so that 200,000 flows can
    // be distinct 5-tuples (ports × addresses).
    for net in 1..=4u8 {
        sh(&format!(
            "ip -n {ID}b addr add 10.202.{net}.2/24 dev {ID}vb && ip -n {ID}a route add 10.202.{net}.0/24 dev {ID}va"
        ))?;
    }
    lab.spawn("b", "iperf3 -s")?;
    std::thread::sleep(Duration::from_millis(500));

    let without = iperf(&lab)?;
    let _ = sh("sysctl -qw kernel.bpf_stats_enabled=1");
    let agent1 = agent(&lab, &[])?;
    let (t0, c0) = ns_per_packet()?;
    let with = iperf(&lab)?;
    let (t1, c1) = ns_per_packet()?;
    let _ = sh("sysctl -qw kernel.bpf_stats_enabled=0");
    drop(agent1);
    let loss = (1.0 - with / without) * 100.0;
    println!(
        "TCP over veth, iperf3 5 s: {:.2} Gbit/s without, {:.2} Gbit/s with the programs: {loss:.1}% less",
        without / 1e9,
        with / 1e9
    );
    let per = if c1 > c0 { (t1 - t0) / (c1 - c0) } else { 0 };
    println!("programs' cost: {per} ns per packet ({} runs)", c1 - c0);

    let xtask = std::env::current_exe()?;
    for target in [200_000u32, 0] {
        let flood = agent(&lab, &["--max-flows", "262144", "--max-records", "262144"])?;
        let rate = lab.run("a", &format!("{} flood 230000 {target}", xtask.display()))?;
        std::thread::sleep(Duration::from_secs(3));
        let lost = metric(flood.1, "netpol_observer_kernel_lost_flow_events_total")?;
        let events = metric(flood.1, "netpol_observer_flow_events_total")?;
        println!(
            "new flows: 230,000 sent at {:.0}/s ({}); {events} flow events read, {lost} lost",
            rate.trim().parse::<f64>().unwrap_or(0.0),
            if target > 0 {
                "paced at 200,000/s"
            } else {
                "as fast as two senders go"
            }
        );
        drop(flood);
    }

    let held = agent(&lab, &["--max-flows", "131072", "--max-records", "131072"])?;
    lab.run("a", &format!("{} flood 100000 0", xtask.display()))?;
    std::thread::sleep(Duration::from_secs(3));
    let connections = metric(held.1, "netpol_observer_connections")?;
    let rss = rss_kib(held.0.id())?;
    println!(
        "agent RSS with {connections} live connections: {:.1} MiB",
        rss as f64 / 1024.0
    );
    Ok(())
}
