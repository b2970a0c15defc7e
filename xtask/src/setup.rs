//! `cargo xtask setup`: install what building and testing netpol needs on a Debian 12 machine.
//!
//! ```text
//! rustfmt + clippy (toolchain running xtask) → nightly + rust-src → LLVM 22 dev packages (apt)
//!   → bpf-linker (cargo install, against LLVM 22) → bpffs at /sys/fs/bpf
//! ```
//!
//! Every step checks before it acts and prints `ok <thing>` or `installing <thing>`, so a run on a
//! machine that has everything takes about a second. The recipe is the one in ARCHITECTURE.md
//! ("The eBPF toolchain recipe"); change both together.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::process;

/// The LLVM major version bpf-linker is built against; it must match the nightly's LLVM.
const LLVM_MAJOR: u32 = 22;
/// The toolchain that builds the kernel programs (`-Z build-std=core`).
const NIGHTLY: &str = "nightly";
/// Debian packages bpf-linker links against (the `llvm-22` feature; keep in step with
/// [`LLVM_MAJOR`], a test checks).
/// Also what the observer's tests run: network namespaces and veths (iproute2), ping, a real
/// DNS server (dnsmasq, without its system service), bpftool (to check that nothing stays
/// attached), promtool (Debian's `prometheus`, for the alert rules) and iperf3 (for
/// `bench-observer`).
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
    "iproute2",
    "iputils-ping",
    "dnsmasq-base",
    "bpftool",
    "prometheus",
    "iperf3",
];
const BPFFS: &str = "/sys/fs/bpf";

pub fn run() -> Result<()> {
    let started = Instant::now();
    let root = is_root();
    rustup_components(&active_toolchain(), &["rustfmt", "clippy"])?;
    nightly()?;
    apt_packages(root)?;
    bpf_linker()?;
    bpffs(root);
    println!("setup done in {:.1?}", started.elapsed());
    Ok(())
}

/// The toolchain cargo is running xtask with (rustup tells its children), else `stable`.
fn active_toolchain() -> String {
    env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".to_owned())
}

fn rustup() -> Command {
    Command::new("rustup")
}

fn installed_components(toolchain: &str) -> Result<Vec<String>> {
    let listing = process::stdout(
        rustup()
            .args(["component", "list", "--installed", "--toolchain"])
            .arg(toolchain),
    )
    .context("netpol needs a rustup-managed toolchain (https://rustup.rs)")?;
    Ok(listing.lines().map(str::to_owned).collect())
}

/// Whether `component` (e.g. `clippy`) is in rustup's list, where host components carry the
/// target (`clippy-x86_64-unknown-linux-gnu`) and the others do not (`rust-src`).
fn has_component(installed: &[String], component: &str) -> bool {
    installed.iter().any(|line| {
        line == component
            || line
                .strip_prefix(component)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|target| target.starts_with(env::consts::ARCH))
    })
}

fn rustup_components(toolchain: &str, components: &[&str]) -> Result<()> {
    let installed = installed_components(toolchain)?;
    let missing: Vec<&str> = components
        .iter()
        .copied()
        .filter(|component| !has_component(&installed, component))
        .collect();
    let thing = format!("{} ({toolchain})", components.join(", "));
    if missing.is_empty() {
        println!("ok {thing}");
        return Ok(());
    }
    println!("installing {} ({toolchain})", missing.join(", "));
    process::run(
        rustup()
            .args(["component", "add", "--toolchain", toolchain])
            .args(&missing),
    )
}

fn nightly() -> Result<()> {
    let toolchains = process::stdout(rustup().args(["toolchain", "list"]))?;
    let prefix = format!("{NIGHTLY}-");
    let present = toolchains
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| name == NIGHTLY || name.starts_with(&prefix));
    if present {
        rustup_components(NIGHTLY, &["rust-src"])?;
    } else {
        println!("installing {NIGHTLY} toolchain with rust-src");
        process::run(rustup().args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
    }
    // bpf-linker hands the nightly's LLVM bitcode to its own LLVM: the majors must agree.
    let version = process::stdout(rustup().args(["run", NIGHTLY, "rustc", "-vV"]))?;
    match llvm_major(&version) {
        Some(major) if major == LLVM_MAJOR => println!("ok {NIGHTLY} uses LLVM {major}"),
        Some(major) => println!(
            "warning: {NIGHTLY} uses LLVM {major} but bpf-linker is built against LLVM \
             {LLVM_MAJOR}; the kernel programs may not link (pin a nightly built on LLVM \
             {LLVM_MAJOR})"
        ),
        None => println!("warning: cannot tell which LLVM {NIGHTLY} uses"),
    }
    Ok(())
}

/// The major of `LLVM version: 22.1.4` in `rustc -vV` output.
fn llvm_major(rustc_version: &str) -> Option<u32> {
    rustc_version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .and_then(|version| version.split('.').next())
        .and_then(|major| major.trim().parse().ok())
}

fn apt_packages(root: bool) -> Result<()> {
    let thing = format!("apt packages ({})", APT_PACKAGES.join(" "));
    let Some(output) = process::probe(
        Command::new("dpkg-query")
            .args(["-W", "-f=${Package} ${Status}\\n"])
            .args(APT_PACKAGES),
    )?
    else {
        println!(
            "warning: not a Debian system (no dpkg-query): install the equivalents of {} yourself",
            APT_PACKAGES.join(" ")
        );
        return Ok(());
    };
    // dpkg-query exits non-zero when a package is unknown; the listing still covers the rest.
    let listing = String::from_utf8_lossy(&output.stdout);
    let missing = missing_packages(&listing, APT_PACKAGES);
    if missing.is_empty() {
        println!("ok {thing}");
        return Ok(());
    }
    let list = missing.join(" ");
    if !root {
        bail!(
            "missing Debian packages `{list}`; run `sudo apt-get update && sudo apt-get install -y \
             {list}`, then `cargo xtask setup` again"
        );
    }
    println!("installing apt packages ({list})");
    process::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .arg("update"),
    )?;
    process::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .args(&missing),
    )
}

/// The `wanted` packages that `dpkg-query -W -f='${Package} ${Status}\n'` does not show installed.
fn missing_packages<'a>(listing: &str, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|package| {
            !listing.lines().any(|line| {
                line.split_once(' ').is_some_and(|(name, status)| {
                    name == *package && status.trim() == "install ok installed"
                })
            })
        })
        .collect()
}

fn bpf_linker() -> Result<()> {
    if bpf_linker_works()? {
        return Ok(());
    }
    // Two concurrent builds of bpf-linker only fight over the CPU; wait for the other one.
    let mut waited = false;
    while let Some(pid) = running_bpf_linker_install() {
        if !waited {
            println!("waiting for `cargo install bpf-linker` already running (pid {pid})");
            waited = true;
        }
        thread::sleep(Duration::from_secs(5));
    }
    if waited && bpf_linker_works()? {
        return Ok(());
    }
    println!("installing bpf-linker (LLVM {LLVM_MAJOR}; takes minutes)");
    let started = Instant::now();
    let llvm_bin = format!("/usr/lib/llvm-{LLVM_MAJOR}/bin");
    let path = match env::var_os("PATH") {
        Some(path) => {
            let mut dirs = vec![PathBuf::from(&llvm_bin)];
            dirs.extend(env::split_paths(&path));
            env::join_paths(dirs).context("PATH contains an invalid entry")?
        }
        None => llvm_bin.into(),
    };
    process::run(
        Command::new(process::cargo())
            .env("PATH", path)
            .args([
                "install",
                "bpf-linker",
                "--no-default-features",
                "--features",
            ])
            .arg(format!("llvm-{LLVM_MAJOR}"))
            .arg("--locked"),
    )?;
    println!("installed bpf-linker in {:.0?}", started.elapsed());
    Ok(())
}

/// Whether `bpf-linker --version` runs, from PATH or from cargo's bin directory.
fn bpf_linker_works() -> Result<bool> {
    let on_path = process::probe(Command::new("bpf-linker").arg("--version"))?;
    if let Some(output) = on_path.filter(|output| output.status.success()) {
        println!("ok {}", String::from_utf8_lossy(&output.stdout).trim());
        return Ok(true);
    }
    let in_cargo_home = cargo_home().join("bin").join("bpf-linker");
    let installed = process::probe(Command::new(&in_cargo_home).arg("--version"))?;
    if let Some(output) = installed.filter(|output| output.status.success()) {
        println!(
            "ok {} (warning: `{}` is not on PATH)",
            String::from_utf8_lossy(&output.stdout).trim(),
            in_cargo_home.display()
        );
        return Ok(true);
    }
    Ok(false)
}

/// The pid of a `cargo install … bpf-linker …` started by someone else, if one is running.
fn running_bpf_linker_install() -> Option<u32> {
    let own = std::process::id();
    fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own)
        .find(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
                let is_cargo = args
                    .first()
                    .is_some_and(|program| program.ends_with(b"cargo"));
                is_cargo
                    && args.contains(&b"install".as_slice())
                    && args.contains(&b"bpf-linker".as_slice())
            })
        })
}

fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME").map_or_else(
        || {
            env::var_os("HOME")
                .map_or_else(PathBuf::new, PathBuf::from)
                .join(".cargo")
        },
        PathBuf::from,
    )
}

/// Best effort: the eBPF tests pin maps under /sys/fs/bpf, but nothing else needs it.
fn bpffs(root: bool) {
    let mounted = fs::read_to_string("/proc/mounts").is_ok_and(|mounts| {
        mounts.lines().any(|line| {
            let mut fields = line.split_whitespace().skip(1);
            fields.next() == Some(BPFFS) && fields.next() == Some("bpf")
        })
    });
    if mounted {
        println!("ok bpffs at {BPFFS}");
    } else if !root {
        println!(
            "warning: bpffs is not mounted at {BPFFS}; as root run `mount -t bpf bpf {BPFFS}`"
        );
    } else {
        println!("installing bpffs at {BPFFS}");
        if let Err(error) = process::run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS])) {
            println!("warning: cannot mount bpffs ({error:#}); tests that pin eBPF maps will fail");
        }
    }
}

/// Whether the effective user is root, from `/proc/self/status` (no libc, no unsafe).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|uids| uids.split_whitespace().nth(1))
            == Some("0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_match_with_or_without_target_suffix() {
        let host = format!("{}-unknown-linux-gnu", env::consts::ARCH);
        let installed = [
            format!("cargo-{host}"),
            format!("clippy-{host}"),
            "rust-src".to_owned(),
            format!("rust-std-{host}"),
        ];
        assert!(has_component(&installed, "clippy"));
        assert!(has_component(&installed, "rust-src"));
        assert!(!has_component(&installed, "rustfmt"));
        assert!(!has_component(&installed, "rust"));
    }

    #[test]
    fn apt_packages_are_for_the_same_llvm() {
        for package in [
            format!("llvm-{LLVM_MAJOR}-dev"),
            format!("libpolly-{LLVM_MAJOR}-dev"),
        ] {
            assert!(APT_PACKAGES.contains(&package.as_str()), "{package}");
        }
    }

    #[test]
    fn llvm_major_is_read_from_rustc_verbose_version() {
        let version = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nhost: x86_64-unknown-linux-gnu\n\
                       release: 1.97.0-nightly\nLLVM version: 22.1.4\n";
        assert_eq!(llvm_major(version), Some(22));
        assert_eq!(llvm_major("rustc 1.95.0\n"), None);
    }

    #[test]
    fn packages_missing_or_half_installed_are_missing() {
        let listing = "llvm-22-dev install ok installed\nlibzstd-dev deinstall ok config-files\n";
        assert_eq!(
            missing_packages(listing, &["llvm-22-dev", "libzstd-dev", "zlib1g-dev"]),
            ["libzstd-dev", "zlib1g-dev"]
        );
    }
}
