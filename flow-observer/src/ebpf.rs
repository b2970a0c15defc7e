//! Loading and attaching the kernel programs (aya).
//!
//! [`Programs`] owns the loaded object: dropping it detaches both programs and frees the maps,
//! so the agent leaves nothing behind when it exits (SIGTERM, SIGINT, or an error).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType};
use aya::{Ebpf, EbpfLoader};
use netpol_ebpf_common::{Counter, FlowKey, FlowStats};

/// The kernel programs, built and placed in `OUT_DIR` by the build script (`build.rs`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netpol-ebpf"));

/// Where cgroup v2 is mounted: the unified hierarchy of a hybrid setup, or `/sys/fs/cgroup`.
pub fn find_cgroup_root() -> Result<PathBuf> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("cannot read /proc/self/mounts")?;
    let mut found: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, path, kind) = (f.next()?, f.next()?, f.next()?);
            (kind == "cgroup2").then(|| PathBuf::from(path))
        })
        .collect();
    found.sort_by_key(|p| p.as_os_str().len());
    found
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no cgroup v2 hierarchy is mounted; pass `--cgroup PATH`"))
}

/// The loaded and attached programs.
pub struct Programs {
    ebpf: Ebpf,
    pub cgroup: PathBuf,
}

impl std::fmt::Debug for Programs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Programs")
            .field("cgroup", &self.cgroup)
            .finish_non_exhaustive()
    }
}

impl Programs {
    /// Load the programs (the `FLOWS` map sized to `max_flows`, each ring buffer `ring_bytes`
    /// long) and attach them to the ingress
    /// and egress of `cgroup`. Through a bpf_link (kernel 5.7+), which coexists with any other
    /// program there (Cilium's own, say) whatever the mode; link_create wants mode flags 0.
    pub fn attach(cgroup: &Path, max_flows: u32, ring_bytes: u32) -> Result<Self> {
        if !ring_bytes.is_power_of_two() || ring_bytes < 4096 {
            bail!(
                "the ring buffer size must be a power of two of at least 4096 bytes, not {ring_bytes}"
            );
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("FLOWS", max_flows)
            .map_max_entries("FLOW_EVENTS", ring_bytes)
            // DNS answers come at a fraction of the rate of new flows.
            .map_max_entries("DNS_EVENTS", ring_bytes.min(1 << 20))
            .load(OBJECT)
            .context("cannot load the eBPF programs (root, or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN, is needed)")?;
        let dir = std::fs::File::open(cgroup)
            .with_context(|| format!("cannot open the cgroup `{}`", cgroup.display()))?;
        for (name, kind) in [
            ("netpol_ingress", CgroupSkbAttachType::Ingress),
            ("netpol_egress", CgroupSkbAttachType::Egress),
        ] {
            let program: &mut CgroupSkb = ebpf
                .program_mut(name)
                .ok_or_else(|| anyhow!("the eBPF object has no program `{name}`"))?
                .try_into()?;
            program
                .load()
                .with_context(|| format!("the kernel rejected `{name}`"))?;
            program
                .attach(&dir, kind, CgroupAttachMode::Single)
                .with_context(|| format!("cannot attach `{name}` to `{}`", cgroup.display()))?;
        }
        Ok(Self {
            ebpf,
            cgroup: cgroup.to_path_buf(),
        })
    }

    /// A ring buffer, taken out of the object (once).
    pub fn ring(&mut self, name: &str) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(name)
            .ok_or_else(|| anyhow!("no map `{name}`"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Every flow the kernel counts now, one at a time (no copy of the whole map).
    pub fn for_each_flow(&self, mut f: impl FnMut(&FlowKey, &FlowStats)) -> Result<()> {
        let map = self
            .ebpf
            .map("FLOWS")
            .ok_or_else(|| anyhow!("no map `FLOWS`"))?;
        let flows: HashMap<&MapData, FlowKey, FlowStats> = HashMap::try_from(map)?;
        for item in flows.iter() {
            match item {
                Ok((k, v)) => f(&k, &v),
                // An LRU entry evicted while iterating: skip it.
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => bail!("cannot read `FLOWS`: {e}"),
            }
        }
        Ok(())
    }

    /// Delete keys from the flow map (those of connections the observer let go); a key the
    /// kernel already evicted is no error. Returns how many were deleted.
    pub fn remove_flows(&mut self, keys: &[FlowKey]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let map = self
            .ebpf
            .map_mut("FLOWS")
            .ok_or_else(|| anyhow!("no map `FLOWS`"))?;
        let mut flows: HashMap<&mut MapData, FlowKey, FlowStats> = HashMap::try_from(map)?;
        let mut deleted = 0;
        for key in keys {
            match flows.remove(key) {
                Ok(()) => deleted += 1,
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => bail!("cannot delete from `FLOWS`: {e}"),
            }
        }
        Ok(deleted)
    }

    /// The kernel's counters, summed over CPUs (levels: the largest), in [`Counter::ALL`] order.
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        let map = self
            .ebpf
            .map("COUNTERS")
            .ok_or_else(|| anyhow!("no map `COUNTERS`"))?;
        let counters: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
        Counter::ALL
            .iter()
            .map(|c| {
                let values = counters.get(&c.index(), 0)?;
                let v = if c.is_level() {
                    values.iter().copied().max().unwrap_or(0)
                } else {
                    values.iter().sum()
                };
                Ok((*c, v))
            })
            .collect()
    }
}
