//! Running external programs: the one place that turns exit statuses into errors.

use std::env;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, Result, bail};

/// The cargo running xtask (so children use the same toolchain), else `cargo` from PATH.
pub fn cargo() -> PathBuf {
    env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// Builds `netpol` in release mode in the workspace at `root` (with `extra` cargo arguments,
/// e.g. `--example NAME`) and returns the binary's path.
pub fn release_netpol(root: &Path, extra: &[&str]) -> Result<PathBuf> {
    run(Command::new(cargo())
        .args(["build", "--release", "--locked", "--bin", "netpol"])
        .args(extra)
        .current_dir(root))?;
    Ok(root.join("target/release/netpol"))
}

/// Builds `netpol-observer` in release mode in the workspace at `root` and returns the
/// binary's path.
pub fn release_observer(root: &Path) -> Result<PathBuf> {
    run(Command::new(cargo())
        .args(["build", "--release", "--locked", "-p", "netpol-observer"])
        .args(["--bin", "netpol-observer"])
        .current_dir(root))?;
    Ok(root.join("target/release/netpol-observer"))
}

/// Runs `cmd` with inherited stdio, echoing it first, and fails unless it exits with 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its output, or `None` when the program does not exist.
///
/// A non-zero exit is not an error here: callers that probe (`dpkg-query`, `bpf-linker
/// --version`) read the status themselves.
pub fn probe(cmd: &mut Command) -> Result<Option<Output>> {
    match cmd.output() {
        Ok(output) => Ok(Some(output)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot start `{}`", display(cmd))),
    }
}

/// Runs `cmd` quietly and returns its stdout, failing (with its stderr) unless it exits with 0.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    let Some(output) = probe(cmd)? else {
        bail!("`{shown}` failed: program not found");
    };
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The command line as a user would type it (environment overrides first).
pub fn display(cmd: &Command) -> String {
    let envs = cmd.get_envs().filter_map(|(key, value)| {
        value.map(|value| format!("{}={}", key.to_string_lossy(), value.to_string_lossy()))
    });
    let program = std::iter::once(cmd.get_program());
    let words = program
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .map(|word| {
            if word.is_empty() || word.contains(char::is_whitespace) {
                format!("'{word}'")
            } else {
                word.into_owned()
            }
        });
    envs.chain(words).collect::<Vec<_>>().join(" ")
}
